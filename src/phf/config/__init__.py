"""phf's configuration: the schema (`phf.config.schema`, one class per section) and how a config is read from
the shipped recipes, YAML files and overrides (`phf.config.load`).

    cfg = load_config("pep8", "conditional", ["training.learning_rate=3e-4"])
"""

from phf.config.load import (
    CONFIG_DIR,
    PAPER_ORDER,
    apply,
    build_config,
    is_prompt_file,
    load_config,
    methods_of,
    parse_override,
    saved_config,
    updated,
)
from phf.config.schema import (
    OBJECTIVE_CONFIGS,
    Config,
    DataConfig,
    EvaluationConfig,
    ModelConfig,
    RedTeamConfig,
    SamplingConfig,
    ScorerConfig,
    TokenizerConfig,
    TrainingConfig,
    field_help,
    training_settings,
)
from phf.settings import RUN_ONLY, ConfigError

__all__ = ["CONFIG_DIR", "OBJECTIVE_CONFIGS", "PAPER_ORDER", "RUN_ONLY", "Config", "ConfigError", "DataConfig",
           "EvaluationConfig", "ModelConfig", "RedTeamConfig", "SamplingConfig", "ScorerConfig", "TokenizerConfig",
           "TrainingConfig", "apply", "build_config", "field_help", "is_prompt_file", "load_config", "methods_of",
           "parse_override", "saved_config", "training_settings", "updated"]

import pytest

from phf.config import CONFIG_DIR, ConfigError, load_config, methods_of, parse_override


@pytest.mark.parametrize("task", sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir()))
def test_every_shipped_recipe_loads(task):
    methods = methods_of(task)
    assert methods[:6] == ["mle", "filtering", "conditional", "unlikelihood", "rwr", "awr"]
    for method in methods:
        cfg = load_config(task, method)
        assert cfg.objective.name == method.split("-")[0]  # conditional-graded etc. are conditional training
        if cfg.evaluation.prompts:
            assert (CONFIG_DIR / task / cfg.evaluation.prompts).is_file()


def test_method_merges_over_task_and_overrides_win():
    cfg = load_config("pep8", "conditional", ["training.learning_rate=3e-4", "objective.threshold=p95"])
    assert cfg.objective.drop_token_fraction == 0.1  # from conditional.yaml
    assert cfg.model.n_layer == 4  # from task.yaml
    assert cfg.training.learning_rate == 3e-4  # YAML reads "3e-4" as a string; validation makes it a float
    assert cfg.objective.threshold == "p95"


def test_unknown_key_names_the_key_and_what_is_allowed():
    with pytest.raises(ConfigError, match=r"unknown key 'training.lr'.*learning_rate"):
        load_config("pep8", "mle", ["training.lr=1"])


def test_bad_value_names_the_key():
    with pytest.raises(ConfigError, match=r"training.learning_rate"):
        load_config("pep8", "mle", ["training.learning_rate=fast"])
    with pytest.raises(ConfigError, match=r"objective.name.*'mle', 'filtering', 'conditional', 'unlikelihood', 'rwr' or 'awr'"):
        load_config("pep8", "mle", ["objective.name=dpo"])
    with pytest.raises(ConfigError, match=r"objective.threshold.*percentile"):
        load_config("pep8", "conditional", ["objective.threshold=p1000"])


def test_unknown_recipe_and_bad_override():
    with pytest.raises(ConfigError, match="no recipe 'dpo'.*conditional"):
        load_config("pep8", "dpo")
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("learning_rate")

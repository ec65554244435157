"""Reading a config: a task YAML and a method YAML merged, then dotted overrides, into the schema
(`phf.config.schema`).

    cfg = load_config("pep8", "conditional", ["training.learning_rate=3e-4"])

`task` and `method` are names of shipped recipes (`phf/configs/<task>/task.yaml`,
`phf/configs/<task>/<method>.yaml`) or paths to YAML files. A method recipe may start
with `extends: BASE`: BASE's keys, then its own merged on top (BASE is a recipe name,
looked up beside the recipe and then among the task's recipes, or a YAML path relative
to the recipe's folder; `extends` itself is no config key). Every field carries its
help text; an unknown key or a bad value raises `ConfigError` naming the key and what
is allowed.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from phf.config.schema import OBJECTIVE_CONFIGS, Config
from phf.settings import ConfigError

CONFIG_DIR = Path(__file__).parent.parent / "configs"


def _recipe(task: str, name: str) -> Path:
    """A recipe by path, or by name beside the task's YAML (shipped tasks: `phf/configs/<task>/`)."""
    if Path(name).suffix in (".yaml", ".yml"):
        path = Path(name)
    else:
        task_yaml = Path(task) if Path(task).suffix in (".yaml", ".yml") else CONFIG_DIR / task / "task.yaml"
        if not task_yaml.is_file():
            shipped = sorted(p.name for p in CONFIG_DIR.iterdir() if (p / "task.yaml").is_file())
            raise ConfigError(f"unknown task {task!r}; shipped tasks: {', '.join(shipped)} (or a path to a task YAML)")
        path = task_yaml if name == "task" else task_yaml.parent / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in task_yaml.parent.glob("*.yaml") if p.stem != "task")
            raise ConfigError(f"no recipe {name!r} for task {task!r}; available: {', '.join(known)} "
                              "(or a path to a YAML)")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return path


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one YAML mapping."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (at any depth): PyYAML keeps the last one
    without a word, so a setting written earlier in the file would silently not apply."""

    def construct_mapping(self, node, deep=False):
        seen = []  # a list, not a set: an unhashable key is left for PyYAML to refuse with its own message
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges keys this mapping may set again
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise DuplicateKeyError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep)


def _yaml_sections(path: Path, empty: dict | None = None) -> dict:
    """A YAML file of config sections; an empty file is `empty` (None: an error)."""
    try:
        # utf-8-sig: a leading byte-order mark (some editors write one) is dropped, not read into the first key
        data = yaml.load(Path(path).read_text(encoding="utf-8-sig"), Loader=_UniqueKeyLoader)
    except DuplicateKeyError as e:
        raise ConfigError(f"{path}:{e.problem_mark.line + 1}: {e.problem}; give each key once") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    if data is None:
        if empty is None:
            raise ConfigError(f"{path}: empty (cut off?); expected a mapping of sections")
        data = empty
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _read_yaml(path: Path) -> dict:
    data = _yaml_sections(path, empty={})
    # Files a recipe names are found beside it; a prompts dataset is a name, not a path.
    for section, key in (("evaluation", "prompts"), ("redteam", "template")):
        value = (data.get(section) or {}).get(key)
        if isinstance(value, str) and not Path(value).is_absolute() and (key == "template" or is_prompt_file(value)):
            data[section][key] = str((path.parent / value).resolve())
    return data


def is_prompt_file(prompts: str) -> bool:
    """evaluation.prompts names a JSONL file (else a dataset: a hub name or a folder of data files)."""
    return prompts.endswith(".jsonl")


def merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def dotted(key: str, value) -> dict:
    """`("training.seed", 1)` -> {"training": {"seed": 1}}: a value set as it is, never parsed (a path stays a path)."""
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{key!r} is not a key of the form section.key")
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def parse_override(text: str) -> dict:
    """`training.learning_rate=3e-4` -> {"training": {"learning_rate": 3e-4}} (the value parsed as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    try:
        value = yaml.load(raw, Loader=_UniqueKeyLoader) if raw else None
    except DuplicateKeyError as e:
        raise ConfigError(f"override {text!r}: {e.problem}; give each key once") from None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({problem}); quote it, "
                          f"e.g. {key}='{raw}'") from None
    return dotted(key, value)


def _explain(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = e["loc"]
        if loc[:1] == ("objective",) and len(loc) > 1 and loc[1] in OBJECTIVE_CONFIGS:  # the union's tag: not a key
            objective, loc = loc[1], ("objective", *loc[2:])
            if e["type"] == "extra_forbidden":
                settings = [f for f in OBJECTIVE_CONFIGS[objective].model_fields if f != "name"]
                lines.append(f"objective.{loc[-1]} does not apply to objective {objective} "
                             f"(its settings: {', '.join(settings) or 'none'})")
                continue
        key = ".".join(str(p) for p in loc if not str(p).startswith(("function-", "literal[", "float", "str")))
        if e["type"] == "union_tag_invalid":
            lines.append(f"{key}.name: {e['input'].get('name')!r} is not an objective; "
                         f"one of: {', '.join(OBJECTIVE_CONFIGS)}")
        elif e["type"] == "extra_forbidden":
            section = Config
            for part in e["loc"][:-1]:
                section = section.model_fields[part].annotation
            lines.append(f"unknown key {key!r}; allowed: {', '.join(section.model_fields)}")
        elif not key:  # a check across sections: its message names the keys
            lines.append(e["msg"].removeprefix("Value error, "))
        else:
            lines.append(f"{key}: {e['msg'].removeprefix('Value error, ')} (got {e.get('input')!r})")
    return "; ".join(dict.fromkeys(lines))


def build_config(raw: dict) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"invalid config: {_explain(e)}") from None


def apply(raw: dict, overrides: list[str] = (), values: dict | None = None) -> dict:
    """`raw` with the `overrides` (section.key=value texts, the value read as YAML), then `values` (section.key
    -> a value taken literally: what command-line flags set, so a path named `null` or holding ': ' stays that path)."""
    for text in overrides:
        raw = merge(raw, parse_override(text))
    for key, value in (values or {}).items():
        raw = merge(raw, dotted(key, value))
    return raw


def saved_config(path: Path) -> dict:
    """A run's config.yaml as raw values. Runs of phf before one settings class per objective saved every
    objective setting, used or not: those their objective does not have are dropped, so their folders resume."""
    raw = _yaml_sections(path)  # an empty config.yaml is a cut-off one, not the defaults
    objective = raw.get("objective")
    if isinstance(objective, dict) and objective.get("name") in OBJECTIVE_CONFIGS:
        fields = OBJECTIVE_CONFIGS[objective["name"]].model_fields
        raw = {**raw, "objective": {k: v for k, v in objective.items() if k in fields}}
    return raw


def updated(cfg: Config, values: dict) -> Config:
    """A copy of `cfg` with `values` (dotted keys, taken literally) set, validated again as a whole."""
    return build_config(apply(cfg.model_dump(), values=values))


def _recipe_chain(path: Path, task: str, chain: tuple[Path, ...] = ()) -> list[dict]:
    """A method recipe's mapping, and before it those of the recipes it extends, the base first (merged in that
    order, each `extends: BASE` takes BASE's keys and changes some). BASE is a YAML path (.yaml/.yml) relative to
    the recipe's folder, or a recipe name: `BASE.yaml` beside the recipe, else the task's recipe of that name (so
    your own recipe file may extend a shipped one)."""
    chain += (path.resolve(),)
    data = _read_yaml(path)
    base = data.pop("extends", None)
    if base is None:
        return [data]
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: extends must name a recipe or a YAML path, got {base!r}")
    if Path(base).suffix in (".yaml", ".yml"):
        candidates = [path.parent / base]
    else:
        candidates = [path.parent / f"{base}.yaml", _recipe(task, "task").parent / f"{base}.yaml"]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        looked = ", ".join(dict.fromkeys(str(p) for p in candidates))
        raise ConfigError(f"{path}: extends {base!r}, which is not found (looked for {looked})")
    if found.resolve() in chain:
        names = [p.name for p in chain + (found.resolve(),)]
        raise ConfigError(f"{path}: recipes extend one another in a cycle: {' -> '.join(names)}")
    return [*_recipe_chain(found, task, chain), data]


def load_config(task: str = "pep8", method: str | None = None, overrides: list[str] = (),
                values: dict | None = None, preset: str | None = None) -> Config:
    """The task's recipe, the method's on top, then the preset's (the same for every method, then its `objectives`
    entry for the method's objective), then the overrides and flag values. A method recipe that extends another
    (conditional-graded extends conditional) keeps what it changes: its own keys come again after the preset."""
    raw = _read_yaml(_recipe(task, "task"))
    chain = _recipe_chain(_recipe(task, method), task) if method else []
    for layer in chain:
        raw = merge(raw, layer)
    if preset:
        raw = _with_preset(raw, _preset(task, preset))
        for layer in chain[1:]:
            raw = merge(raw, layer)
    return build_config(apply(raw, overrides, values))


def _preset(task: str, name: str) -> Path:
    """A preset by path, or by name in the task's `presets/` folder (shipped: `paper`, the paper's full scale)."""
    if Path(name).suffix in (".yaml", ".yml"):
        path = Path(name)
    else:
        folder = _recipe(task, "task").parent / "presets"
        path = folder / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in folder.glob("*.yaml"))
            raise ConfigError(f"no preset {name!r} for task {task!r}; available: {', '.join(known) or 'none'} "
                              "(or a path to a YAML)")
    if not path.is_file():
        raise ConfigError(f"preset file not found: {path}")
    return path


def _with_preset(raw: dict, path: Path) -> dict:
    """`raw` with a preset's sections, then the preset's settings for `raw`'s objective: a preset is a scale (model,
    corpus, budget, evaluation sizes) for every method of a task, whose objectives may each need their own learning
    rate, batch or thresholds (`objectives: {awr: {training: {learning_rate: 1.0e-3}}}`)."""
    preset = _read_yaml(path)
    per_objective = preset.pop("objectives", None) or {}
    unknown = sorted(set(per_objective) - set(OBJECTIVE_CONFIGS)) if isinstance(per_objective, dict) else per_objective
    if unknown:
        raise ConfigError(f"{path}: objectives must map objective names ({', '.join(OBJECTIVE_CONFIGS)}) to "
                          f"config sections, got {unknown!r}")
    raw = merge(raw, preset)
    objective = (raw.get("objective") or {}).get("name", "mle")
    return merge(raw, per_objective.get(objective) or {})


PAPER_ORDER = ["mle", "filtering", "conditional", "unlikelihood", "rwr", "awr"]


def methods_of(task: str) -> list[str]:
    """Method recipes of a task (every YAML beside its task.yaml): the paper's objectives in its order, then others."""
    names = [p.stem for p in _recipe(task, "task").parent.glob("*.yaml") if p.stem != "task"]
    return sorted(names, key=lambda n: (PAPER_ORDER.index(n) if n in PAPER_ORDER else len(PAPER_ORDER), n))

import pytest

from phf.config import CONFIG_DIR, ConfigError, load_config, methods_of, parse_override, training_settings


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
    with pytest.raises(ConfigError, match=r"objective.name: 'dpo' is not an objective; "
                                          r"one of: mle, filtering, conditional, unlikelihood, rwr, awr"):
        load_config("pep8", "mle", ["objective.name=dpo"])
    with pytest.raises(ConfigError, match=r"objective.threshold.*percentile"):
        load_config("pep8", "conditional", ["objective.threshold=p1000"])


def test_unknown_recipe_and_bad_override():
    with pytest.raises(ConfigError, match="no recipe 'dpo'.*conditional"):
        load_config("pep8", "dpo")
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("learning_rate")


def write(path, text):
    path.write_text(text)
    return str(path)


def test_a_recipe_extends_another_and_its_own_keys_win(tmp_path):
    write(tmp_path / "base.yaml", "objective: {name: conditional, threshold: 0.0, drop_token_fraction: 0.2}\n"
                                  "training: {learning_rate: 1.0e-3}\n")
    child = write(tmp_path / "child.yaml", "extends: base\nobjective: {drop_token_fraction: 0.3}\n")
    cfg = load_config("pep8", child)
    assert cfg.objective.drop_token_fraction == 0.3  # its own
    assert (cfg.objective.threshold, cfg.training.learning_rate) == (0.0, 1e-3)  # the base's, merged key by key
    assert cfg.model.n_layer == 4  # task.yaml's


def test_a_chain_of_two_and_a_base_by_path_relative_to_the_recipe(tmp_path):
    (tmp_path / "bases").mkdir()
    write(tmp_path / "bases" / "a.yaml", "objective: {name: conditional, threshold: 0.0}\ntraining: {seed: 7}\n")
    write(tmp_path / "bases" / "b.yaml", "extends: a\nobjective: {num_levels: 4}\ntraining: {seed: 8}\n")
    c = write(tmp_path / "c.yaml", "extends: bases/b.yaml\nsampling: {guidance: 2}\n")
    cfg = load_config("pep8", c)
    assert ((cfg.objective.name, cfg.objective.num_levels, cfg.training.seed, cfg.sampling.guidance)
            == ("conditional", 4, 8, 2))


def test_a_cycle_is_an_error_naming_it(tmp_path):
    write(tmp_path / "a.yaml", "extends: b\n")
    write(tmp_path / "b.yaml", "extends: a\n")
    with pytest.raises(ConfigError, match=r"cycle: a\.yaml -> b\.yaml -> a\.yaml"):
        load_config("pep8", str(tmp_path / "a.yaml"))
    with pytest.raises(ConfigError, match=r"cycle: self\.yaml -> self\.yaml"):
        load_config("pep8", write(tmp_path / "self.yaml", "extends: self.yaml\n"))


def test_a_missing_base_is_an_error_naming_the_recipe_and_the_base(tmp_path):
    recipe = write(tmp_path / "mine.yaml", "extends: condtional\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: extends 'condtional', which is not found"):
        load_config("pep8", recipe)
    with pytest.raises(ConfigError, match="extends must name a recipe"):
        load_config("pep8", write(tmp_path / "bad.yaml", "extends: [a, b]\n"))


def test_your_own_recipe_extends_a_shipped_one_unless_its_folder_has_that_name(tmp_path):
    mine = write(tmp_path / "mine.yaml", "extends: conditional\nobjective: {cooldown_fraction: 0.2}\n")
    cfg = load_config("toxicity", mine)
    assert (cfg.objective.threshold, cfg.objective.cooldown_fraction) == ("p50", 0.2)  # toxicity's conditional.yaml
    write(tmp_path / "conditional.yaml", "objective: {name: conditional, threshold: p90}\n")
    assert load_config("toxicity", mine).objective.threshold == "p90"  # the recipe's own folder first


def test_guided_arms_train_conditional_s_model():
    # phf experiment trains one model for arms with the same training settings: the guided arms extend conditional.
    for task in ("pep8", "toxicity", "pii"):
        conditional = training_settings(load_config(task, "conditional"))
        for method in ("conditional-guided-w1", "conditional-guided-w3"):
            assert training_settings(load_config(task, method)) == conditional, (task, method)

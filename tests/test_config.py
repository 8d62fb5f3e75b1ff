from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from gazal.config import (
    ConfigError,
    OpenSection,
    OpenTo,
    cfg,
    config_from_dict,
    config_to_dict,
    describe_config,
    load_config,
    parse_overrides,
)
from gazal.rundir import prepare_run_dir


@dataclass
class Lora:
    r: int = cfg(16, "adapter rank")
    alpha: float = cfg(32.0, "scaling numerator")
    target_modules: list[str] = cfg(["q_proj", "v_proj"], "modules to adapt")


@dataclass
class Train:
    learning_rate: float = cfg(1e-4, "peak learning rate", aliases=["lr"])
    epochs: int = cfg(1, "passes over the data")
    bf16: bool = cfg(False, "bfloat16 mixed precision")
    schedule: Literal["cosine", "linear", "constant"] = cfg("cosine", "lr schedule")


@dataclass
class Recipe:
    model: str = cfg("tiny", "model path or Hub id")
    lora: Lora = field(default_factory=Lora)
    train: Train = field(default_factory=Train)
    seed: int | None = cfg(None, "random seed")
    trl: dict[str, object] = cfg({}, "extra TRL arguments")


def write(tmp_path, text):
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


def test_recipe_and_overrides(tmp_path):
    p = write(tmp_path, "model: m\nlora:\n  r: 8\ntrain:\n  learning_rate: 1e-5\n")
    c = load_config(Recipe, p, ["--lr", "3e-4", "--lora.alpha=64", "--train.bf16",
                                "--lora.target_modules", "q_proj,k_proj", "--seed", "7"])
    assert c.model == "m" and c.lora.r == 8 and c.lora.alpha == 64.0
    assert c.train.learning_rate == 3e-4 and c.train.bf16 is True and c.seed == 7
    assert c.lora.target_modules == ["q_proj", "k_proj"]


def test_yaml_float_without_dot_is_a_float(tmp_path):
    # PyYAML reads 1e-5 as a string; a float field still takes it.
    c = load_config(Recipe, write(tmp_path, "train:\n  learning_rate: 1e-5\n"))
    assert c.train.learning_rate == pytest.approx(1e-5)


def test_unknown_key_names_it_and_suggests(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(Recipe, write(tmp_path, "train:\n  learnig_rate: 0.1\n"))
    msg = str(e.value)
    assert "recipe.yaml" in msg and "train.learnig_rate" in msg and "train.learning_rate" in msg


def test_unknown_override_suggests():
    with pytest.raises(ConfigError, match=r"--lora\.alpah.*did you mean --lora\.alpha"):
        load_config(Recipe, None, ["--lora.alpah", "3"])


def test_type_errors_name_key():
    with pytest.raises(ConfigError, match=r"key 'lora.r': expected int, got 'big'"):
        load_config(Recipe, None, ["--lora.r", "big"])
    with pytest.raises(ConfigError, match=r"key 'train.bf16': expected bool"):
        load_config(Recipe, None, ["--train.bf16", "3"])
    with pytest.raises(ConfigError, match=r"'train.schedule'.*did you mean 'cosine'"):
        load_config(Recipe, None, ["--schedule", "cosin"])
    with pytest.raises(ConfigError, match=r"key 'lora': expected mapping"):
        load_config(Recipe, None, [("lora", 3)])


def test_int_rejects_fraction_and_bool():
    with pytest.raises(ConfigError):
        load_config(Recipe, None, ["--lora.r", "2.5"])
    with pytest.raises(ConfigError):
        load_config(Recipe, None, ["--lora.r", "true"])
    assert load_config(Recipe, None, ["--lora.r", "1e2"]).lora.r == 100


def test_free_mapping_passes_through():
    c = load_config(Recipe, None, ["--trl.beta", "0.04", "--trl.loss_type", "dapo"])
    assert c.trl == {"beta": 0.04, "loss_type": "dapo"}


def test_invalid_yaml_names_line(tmp_path):
    with pytest.raises(ConfigError, match=r"recipe.yaml:2:1: invalid YAML"):
        load_config(Recipe, write(tmp_path, "model: m\n\tlora: 1\n"))
    with pytest.raises(ConfigError, match=r"expected a mapping"):
        load_config(Recipe, write(tmp_path, "- a\n- b\n"))


def test_parse_overrides_forms():
    assert parse_overrides(["--a", "1", "--b=x", "--flag", "--neg", "-3", "--max-new-tokens",
                            "5"]) == [("a", 1), ("b", "x"), ("flag", True), ("neg", -3),
                                      ("max_new_tokens", 5)]
    with pytest.raises(ConfigError, match="unexpected argument"):
        parse_overrides(["positional"])


def test_ambiguous_leaf_is_an_error():
    @dataclass
    class Two:
        a: Lora = field(default_factory=Lora)
        b: Lora = field(default_factory=Lora)

    with pytest.raises(ConfigError, match=r"ambiguous.*--a\.r.*--b\.r"):
        load_config(Two, None, ["--r", "4"])


def test_resolved_config_saved_and_resume_checked(tmp_path):
    c = load_config(Recipe, None, ["--lr", "0.001"])
    run = prepare_run_dir(tmp_path / "run", c, command="sft")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["learning_rate"] == 0.001 and saved["command"] == "sft"
    prepare_run_dir(tmp_path / "run", c, command="sft")  # same config: resumes
    other = load_config(Recipe, None, ["--lr", "0.01"])
    with pytest.raises(ConfigError, match=r"train.learning_rate: 0.001 \(saved\) != 0.01"):
        prepare_run_dir(tmp_path / "run", other, command="sft")
    prepare_run_dir(tmp_path / "run", other, command="sft", resumable_keys=["train"])


def test_describe_and_to_dict():
    rows = {r[0]: r for r in describe_config(Recipe)}
    assert rows["train.learning_rate"][3] == "peak learning rate"
    assert rows["lora.target_modules"][2] == ["q_proj", "v_proj"]
    assert config_to_dict(Recipe())["lora"]["r"] == 16


def test_mapping_override_merges_into_the_section(tmp_path):
    p = write(tmp_path, "lora:\n  r: 8\n  alpha: 4\n")
    c = load_config(Recipe, p, [("lora", {"alpha": 16})])
    assert c.lora.r == 8 and c.lora.alpha == 16.0


# --------------------------------------------------------------------------- open sections


class Level(enum.Enum):
    LOW = "low"
    HIGH = "high"


@dataclass
class LibraryBase:  # stands for transformers.TrainingArguments
    seed: int = 42
    logging_steps: float = field(default=10, metadata={"help": "log every N steps"})


@dataclass
class LibraryConfig(LibraryBase):  # stands for a TRL config class
    beta: float = field(default=0.0, metadata={"help": "KL   coefficient"})
    tags: list[str] | None = None
    level: Level | None = None
    output_dir: str | None = None
    temperature: float = 1.0


@dataclass
class OpenAlgo(OpenSection):
    OPEN = OpenTo(f"{__name__}.LibraryConfig", exclude=f"{__name__}.LibraryBase",
                  elsewhere="optim", refused={"output_dir": "set output_dir at the top"})

    temperature: float = cfg(0.7, "gazal's own default")
    extra: dict[str, object] = cfg({}, "other LibraryConfig fields")


@dataclass
class OpenOptim(OpenSection):
    OPEN = OpenTo(f"{__name__}.LibraryConfig", only=f"{__name__}.LibraryBase")

    extra: dict[str, object] = cfg({}, "other LibraryBase fields")


@dataclass
class OpenRecipe:
    algo: OpenAlgo = field(default_factory=OpenAlgo)
    optim: OpenOptim = field(default_factory=OpenOptim)


def test_open_section_accepts_checks_and_passes_library_fields(tmp_path):
    p = write(tmp_path, "algo:\n  beta: 1e-2\n  tags: [a, b]\n  level: high\n"
                        "optim:\n  logging_steps: 5\n")
    c = load_config(OpenRecipe, p, ["--algo.temperature", "0.5", "--seed", "7"])
    assert c.algo.extra == {"beta": 0.01, "tags": ["a", "b"], "level": "high"}
    assert c.optim.extra == {"logging_steps": 5, "seed": 7}  # an int stays an int
    assert isinstance(c.optim.extra["logging_steps"], int)
    assert c.algo.temperature == 0.5 and c.algo.beta == 0.01
    assert OpenAlgo().beta == 0.0 and OpenOptim().seed == 42  # unset: the library default
    with pytest.raises(AttributeError):
        _ = OpenAlgo().nonexistent
    # the older {extra: {...}} form takes the same path and the same checks
    assert load_config(OpenRecipe, None, [("algo", {"extra": {"beta": 2}})]).algo.beta == 2.0
    with pytest.raises(ConfigError, match=r"algo\.extra\.temperature: set algo\.temperature"):
        load_config(OpenRecipe, None, [("algo", {"extra": {"temperature": 2}})])
    # the saved config writes library keys beside the declared ones and loads back the same
    saved = config_to_dict(c)
    assert saved["algo"] == {"temperature": 0.5, "beta": 0.01, "tags": ["a", "b"],
                             "level": "high"}
    assert config_from_dict(OpenRecipe, saved) == c


def test_open_section_errors():
    with pytest.raises(ConfigError, match=r"key 'algo\.beta': expected float"):
        load_config(OpenRecipe, None, ["--algo.beta", "much"])
    with pytest.raises(ConfigError, match=r"key 'algo\.level'.*did you mean 'high'"):
        load_config(OpenRecipe, None, ["--algo.level", "hihg"])
    with pytest.raises(ConfigError, match=r"algo\.output_dir: not settable in gazal: set "
                                          r"output_dir at the top"):
        load_config(OpenRecipe, None, [("algo", {"output_dir": "x"})])
    # unknown keys: "did you mean" over gazal's and the library's names, and a field of
    # the sibling section is pointed there
    with pytest.raises(ConfigError, match=r"unknown key 'algo\.betta'.*did you mean "
                                          r"'algo\.beta'.*or any field of"):
        config_from_dict(OpenRecipe, {"algo": {"betta": 1}}, source="r.yaml")
    with pytest.raises(ConfigError, match=r"unknown key 'algo\.seed'.*did you mean "
                                          r"'optim\.seed'"):
        config_from_dict(OpenRecipe, {"algo": {"seed": 1}})
    with pytest.raises(ConfigError, match=r"unknown key 'optim\.beta'"):
        config_from_dict(OpenRecipe, {"optim": {"beta": 1}})
    with pytest.raises(ConfigError, match=r"unknown override --algo\.betta; did you mean "
                                          r"--algo\.beta"):
        load_config(OpenRecipe, None, ["--algo.betta", "1"])


def test_open_section_describe_lists_library_fields_with_their_help():
    rows = {r[0]: r for r in describe_config(OpenRecipe)}
    assert rows["algo.temperature"][2:] == (0.7, "gazal's own default")
    assert rows["algo.beta"][1:] == ("float", 0.0, "(LibraryConfig) KL coefficient")
    assert rows["optim.logging_steps"][3] == "(LibraryConfig) log every N steps"
    assert "algo.output_dir" not in rows and "algo.extra" not in rows  # refused; the store
    assert "optim.beta" not in rows and "algo.seed" not in rows


def test_recipe_files_that_cannot_be_read_are_named(tmp_path):
    from gazal.config import load_yaml_mapping

    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"output_dir: x\nmodel:\n  name_or_path: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:3: not UTF-8 text \(byte 0xe9"):
        load_yaml_mapping(bad)
    with pytest.raises(ConfigError, match="is a folder; give the recipe's YAML file"):
        load_yaml_mapping(tmp_path)


@pytest.mark.parametrize("key, value, message", [
    ("r", "0", "lora.r must be >= 1, got 0"), ("alpha", "0", "lora.alpha must be > 0"),
    ("dropout", "1.5", r"lora.dropout must be in \[0, 1\)")])
def test_lora_settings_out_of_range_are_config_errors(key, value, message):
    from gazal.train.config import SFTRecipe
    from gazal.train.grpo_config import GRPORecipe

    for recipe_cls in (SFTRecipe, GRPORecipe):
        with pytest.raises(ConfigError, match=message):
            load_config(recipe_cls, None, ["--model.name_or_path", "m", f"--lora.{key}", value])


def test_local_model_paths_name_the_real_cause(tmp_path):
    from gazal.generation.loading import check_local_source

    with pytest.raises(ConfigError, match=r"model: cannot load model '.*nowhere': no such "
                                          r"local folder"):
        check_local_source(tmp_path / "nowhere", "model")
    with pytest.raises(ConfigError, match="no such local folder"):
        check_local_source("runs/demo/merged-not-there", "model")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "config.json").write_text("{}")
    check_local_source(tmp_path / "weights", "model")  # a model folder: fine
    with pytest.raises(ConfigError, match="the folder holds no tokenizer"):
        check_local_source(tmp_path / "weights", "model.name_or_path", tokenizer=True)
    with pytest.raises(ConfigError, match="it is a file"):
        check_local_source(tmp_path / "weights" / "config.json", "model")
    check_local_source("Qwen/Qwen3-8B", "model", tokenizer=True)  # a Hub id: left to the Hub

"""Weight files: search order, checks, refusal of a wrong hash with both hashes, status listing."""
import dataclasses
import hashlib

import pytest

from harness.util.errors import MissingWeightsError, UnknownNameError
from harness.contract.plugins import build_plugins, hookimpl
from harness.contract.types import WeightFile
from harness.core.weights import describe_weights, find_weight, search_dirs, weight_status

CONTENT = b"pretend these are weights"
SHA = hashlib.sha256(CONTENT).hexdigest()


class _WeightPlugin:
    @hookimpl
    def harness_weight_files(self):
        return [
            WeightFile("full", "test: full sha256", ["full.pth"], "sha256", SHA),
            WeightFile("prefix", "test: hub-style name", [f"net-{SHA[:8]}.pth", "net-00000000.pth"], "sha256-prefix"),
            WeightFile("md5", "test: md5", ["m.bin"], "md5", hashlib.md5(CONTENT).hexdigest()),
            WeightFile("free", "test: no check", ["free.bin"], "none"),
        ]


@pytest.fixture
def env(tmp_path, monkeypatch):
    dirs = {k: tmp_path / k for k in ("cli", "env", "torch", "home")}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv("HARNESS_WEIGHTS", str(dirs["env"]))
    monkeypatch.setenv("TORCH_HOME", str(dirs["torch"]))
    monkeypatch.setenv("HOME", str(dirs["home"]))
    return dirs


@pytest.fixture
def plugins(env):
    """The plugin set as the CLI passes it on with ``--weights-dir <env["cli"]>``."""
    return dataclasses.replace(build_plugins([_WeightPlugin()], entry_points=False), weights_dir=env["cli"])


def test_search_order(env):
    assert search_dirs(env["cli"]) == [env["cli"], env["env"], env["torch"] / "hub" / "checkpoints",
                                       env["home"] / ".cache" / "clip"]
    assert search_dirs() == [env["env"], env["torch"] / "hub" / "checkpoints", env["home"] / ".cache" / "clip"]


def test_weights_dir_is_passed_as_a_value(env, plugins, capsys):
    """`--weights-dir` reaches the lookup without touching the process environment."""
    import os

    from harness.cli import main

    (env["cli"] / "full.pth").write_bytes(CONTENT)
    plain = dataclasses.replace(plugins, weights_dir=None)
    assert main(["weights", "--weights-dir", str(env["cli"])], plugins=plain) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"search order: {env['cli']}, {env['env']}")
    assert f"full: present at {env['cli'] / 'full.pth'}" in out
    assert "HARNESS_WEIGHTS_DIR" not in os.environ and plain.weights_dir is None


def test_missing_names_files_and_places(env, plugins):
    with pytest.raises(MissingWeightsError) as e:
        find_weight(plugins, "full")
    msg = str(e.value)
    assert "full.pth" in msg and str(env["cli"]) in msg and "\n" not in msg
    with pytest.raises(UnknownNameError):
        find_weight(plugins, "nope")


def test_found_in_order_and_verified(env, plugins):
    (env["env"] / "full.pth").write_bytes(CONTENT)
    assert find_weight(plugins, "full") == env["env"] / "full.pth"
    (env["cli"] / "full.pth").write_bytes(CONTENT)
    assert find_weight(plugins, "full") == env["cli"] / "full.pth"  # --weights-dir first
    hub = env["torch"] / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / f"net-{SHA[:8]}.pth").write_bytes(CONTENT)
    assert find_weight(plugins, "prefix").name == f"net-{SHA[:8]}.pth"
    (env["env"] / "m.bin").write_bytes(CONTENT)
    assert find_weight(plugins, "md5").name == "m.bin"


def test_wrong_hash_refused_with_both_hashes(env, plugins):
    (env["cli"] / "full.pth").write_bytes(b"something else")
    bad = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(MissingWeightsError) as e:
        find_weight(plugins, "full")
    assert SHA in str(e.value) and bad in str(e.value)
    (env["cli"] / "net-00000000.pth").write_bytes(CONTENT)  # the name's hash prefix does not match the content
    with pytest.raises(MissingWeightsError) as e:
        find_weight(plugins, "prefix")
    assert "00000000" in str(e.value) and SHA[:8] in str(e.value)
    # a right copy further down the search order is still found
    (env["env"] / "full.pth").write_bytes(CONTENT)
    assert find_weight(plugins, "full") == env["env"] / "full.pth"


def test_status_listing(env, plugins):
    (env["cli"] / "free.bin").write_bytes(b"x")
    (env["cli"] / "m.bin").write_bytes(b"not it")
    (env["cli"] / "full.pth").write_bytes(CONTENT)
    status = {r["name"]: r["status"] for r in weight_status(plugins)}
    assert status["free"] == "unverified" and status["md5"] == "wrong hash" and status["full"] == "present"
    assert status["prefix"] == "missing"
    text = describe_weights(plugins)
    for word in ("unverified", "wrong hash", "present", "missing", "net-00000000.pth", str(env["cli"])):
        assert word in text


def test_builtin_metric_weights_are_announced():
    files = build_plugins(entry_points=False).weight_files()
    assert files["inception_tf_fid"].check == "sha256-prefix"
    assert "weights-inception-2015-12-05-6726825d.pth" in files["inception_tf_fid"].filenames
    assert files["clip_vit_b32"].digest.startswith("40d36571")
    metrics = build_plugins(entry_points=False).metrics()
    for m in metrics.values():
        for w in m.weights:
            assert w in files, f"metric {m.name} needs unannounced weight file {w}"

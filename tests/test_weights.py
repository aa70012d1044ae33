"""Weight files: search order, checks, refusal of a wrong hash with both hashes, status listing."""
import dataclasses
import hashlib

import pytest

from harness.util.errors import MissingWeightsError, UnknownNameError
from harness.contract.plugins import build_plugins, hookimpl
from harness.contract.types import Download, WeightFile
from harness.core.fetch import parse_digest
from harness.core.weights import (declared_digest, describe_weights, find_weight, require_weight, search_dirs,
                                  weight_status)

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
    assert weight_status(plugins)[[r["name"] for r in weight_status(plugins)].index("prefix")]["status"] == \
        "prefix-checked only"
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
    fid = files["inception_tf_fid"]
    assert fid.check == "sha256" and len(fid.digest) == 64 and fid.digest.startswith("6726825d")
    assert "weights-inception-2015-12-05-6726825d.pth" in fid.filenames
    assert files["clip_vit_b32"].digest.startswith("40d36571")
    metrics = build_plugins(entry_points=False).metrics()
    for m in metrics.values():
        for w in m.weights:
            assert w in files, f"metric {m.name} needs unannounced weight file {w}"


def test_a_forged_file_matching_the_prefix_is_refused_by_the_declared_full_digest(env):
    """The forged file's sha256 starts with the published prefix; only the full digest tells it apart."""
    forged = b"random weights that happen to match a prefix"
    forged_sha = hashlib.sha256(forged).hexdigest()
    real_sha = forged_sha[:8] + ("0" if forged_sha[8] != "0" else "1") + forged_sha[9:]  # differs after the prefix
    name = f"net-{forged_sha[:8]}.pth"
    prefix_only = WeightFile("w", "test", [name], "sha256-prefix")
    declared = WeightFile("w", "test", [name], "sha256-prefix",
                          downloads=[Download(name, ("http://127.0.0.1:9/x",), digest=f"sha256:{real_sha}")])
    (env["cli"] / name).write_bytes(forged)
    assert require_weight(prefix_only, env["cli"]) == env["cli"] / name  # the prefix rule alone accepts the forgery
    with pytest.raises(MissingWeightsError) as e:
        require_weight(declared, env["cli"])
    assert real_sha in str(e.value) and forged_sha in str(e.value) and "harness fetch w" in str(e.value)


def test_builtin_full_digests_are_declared_for_the_files_fetched():
    files = build_plugins(entry_points=False).weight_files()
    for name in ("inception_tf_fid", "clip_vit_b32", "damsm_inception_v3"):
        w = files[name]
        assert w.downloads, name
        for d in w.downloads:
            assert d.filename in w.filenames and d.urls and parse_digest(d.digest)[0] == "sha256"
    from plugins.ecagan.losses import VGG16_IMAGENET

    assert VGG16_IMAGENET.check == "sha256" and VGG16_IMAGENET.digest.startswith("397923af")
    assert VGG16_IMAGENET.downloads[0].digest == f"sha256:{VGG16_IMAGENET.digest}"
    # the older torchvision Inception file has only its name's prefix: checked on it, shown as such
    assert declared_digest(files["damsm_inception_v3"], "inception_v3_google-1a9a5a14.pth") is None


def test_weights_listing_says_which_file_has_a_full_digest_and_which_a_prefix(env):
    name_full, name_prefix = "net-0123abcd.pth", "net-89efcdab.pth"
    full = "0123abcd" + "5" * 56

    class P:
        @hookimpl
        def harness_weight_files(self):
            return [WeightFile("w", "test", [name_full, name_prefix], "sha256-prefix",
                               downloads=[Download(name_full, ("http://127.0.0.1:9/x",), digest=f"sha256:{full}")])]

    text = describe_weights(build_plugins([P()], entry_points=False))
    assert (f"    check: sha256 {full} for {name_full}; sha256-prefix from the file name's hex suffix for "
            f"{name_prefix}") in text


def test_missing_line_names_the_fetch_command(env):
    w = WeightFile("fetchable", "test", ["f.pth"], "sha256", SHA,
                   downloads=[Download("f.pth", ("http://127.0.0.1:9/f.pth",), digest=f"sha256:{SHA}")])
    with pytest.raises(MissingWeightsError, match="run `harness fetch fetchable`"):
        require_weight(w)


def test_auto_fetch_on_first_use_only_when_asked(env, monkeypatch):
    from fetch_server import LoopbackServer, Route

    with LoopbackServer() as server:
        route = server.routes["/f.pth"] = Route(CONTENT)
        w = WeightFile("fetchable", "test", ["f.pth"], "sha256", SHA,
                       downloads=[Download("f.pth", (server.url("/f.pth"),), digest=f"sha256:{SHA}")])
        with pytest.raises(MissingWeightsError):  # the default: nothing downloaded implicitly
            require_weight(w, env["cli"])
        assert route.requests == []
        monkeypatch.setenv("HARNESS_FETCH", "auto")
        assert require_weight(w, env["cli"]) == env["cli"] / "f.pth"
        assert (env["cli"] / "f.pth").read_bytes() == CONTENT and len(route.requests) == 1

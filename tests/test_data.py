"""Data pins, verification and pulls, on real DVC repositories built with the `dvc` CLI."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dvcrepos
import pytest
import yaml
from dvcrepos import (
    IMAGES_V1,
    IMAGES_V2,
    LEGACY_DIR,
    LEGACY_TEXT,
    SOURCE_V1,
    SOURCE_V2,
    TRAIN_V1,
    TRAIN_V2,
    Repos,
)
from mlproject.runner.data import (
    DataError,
    Status,
    check,
    data_status,
    pin_input,
    pull,
    render,
    require,
    rows_json,
    verify,
)
from mlproject.spec.model import DataInput

pytestmark = pytest.mark.slow  # real DVC repositories and the `dvc` CLI, nearly every test

_DVC_ENV = ("DVC_NO_ANALYTICS", "DVC_SITE_CACHE_DIR", "DVC_GLOBAL_CONFIG_DIR",
            "DVC_SYSTEM_CONFIG_DIR")


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Repos:
    return dvcrepos.build(tmp_path_factory.mktemp("dvc") / "base")


@pytest.fixture
def repos(template: Repos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repos:
    """A private copy of the repositories; DVC in this process isolated like the CLI."""
    for key in _DVC_ENV:
        monkeypatch.setenv(key, template.env[key])
    return template.copy(tmp_path / "base")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def error(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(DataError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return str(caught.value)


def obj(store: Path, digest: str) -> Path:
    return store / "files" / "md5" / digest[:2] / digest[2:]


def corrupt(path: Path, data: bytes = b"corrupted") -> None:
    path.chmod(0o644)  # DVC keeps objects read-only
    path.write_bytes(data)


# --- pins -----------------------------------------------------------------------------------


def test_pins_follow_tags_branches_and_head(repos: Repos) -> None:
    root = str(repos.main)
    v1 = pin_input(root, DataInput("train", "data/train.csv", rev="v1"))
    v2 = pin_input(root, DataInput("train", "data/train.csv", rev="v2"))
    head = pin_input(root, DataInput("train", "data/train.csv"))
    sha1 = repos.git(repos.main, "rev-parse", "v1^{commit}").strip()
    assert v1.to_json() == {"name": "train", "path": "data/train.csv", "repo": None, "rev": "v1",
                            "sha": sha1, "md5": md5(TRAIN_V1), "size": len(TRAIN_V1), "nfiles": 1,
                            "dvc": 3}
    assert v2.md5 == head.md5 == md5(TRAIN_V2)
    assert head.sha == repos.git(repos.main, "rev-parse", "HEAD").strip() and head.rev is None
    assert pin_input(root, DataInput("t", "data/train.csv", rev=sha1[:8])).sha == sha1
    assert pin_input(root, DataInput("t", "data/train.csv", rev="main")).sha == head.sha


def test_directory_pin_with_nested_and_unicode_names_hashes_as_dvc_does(repos: Repos) -> None:
    root = str(repos.main)
    pin = pin_input(root, DataInput("images", "images"))
    recorded = yaml.safe_load((repos.main / "images.dvc").read_text())["outs"][0]
    assert (pin.md5, pin.size, pin.nfiles) == (recorded["md5"], recorded["size"], len(IMAGES_V2))
    assert pin.md5.endswith(".dir") and pin.isdir
    # the workspace copy DVC wrote hashes to DVC's own .dir hash, unicode listing and all
    assert check(root, pin) == Status("images", "images", "matches", pin.md5, pin.md5)
    assert pin_input(root, DataInput("images", "images", rev="v1")).nfiles == len(IMAGES_V1)


def test_a_declared_md5_must_match_the_pin(repos: Repos) -> None:
    root = str(repos.main)
    assert pin_input(root, DataInput("train", "data/train.csv", rev="v1", md5=md5(TRAIN_V1)))
    images = pin_input(root, DataInput("images", "images"))
    assert pin_input(root, DataInput("images", "images", md5=images.md5.removesuffix(".dir")))
    sha = repos.git(repos.main, "rev-parse", "v2").strip()
    assert error(pin_input, root, DataInput("train", "data/train.csv", rev="v2", md5=md5(TRAIN_V1))) == (
        f"data.train: md5 {md5(TRAIN_V1)} is declared, but data/train.csv at v2 ({sha[:12]}) is "
        f"{md5(TRAIN_V2)}; set `md5: {md5(TRAIN_V2)}` if this version is intended, or change `rev:`")


def test_resolution_errors_say_what_to_do(repos: Repos, tmp_path: Path) -> None:
    root = str(repos.main)
    head = repos.git(repos.main, "rev-parse", "HEAD").strip()[:12]

    def fails(**kwargs: str) -> str:
        return error(pin_input, root, DataInput("x", **kwargs))  # type: ignore[arg-type]

    assert fails(path="data/train.csv", rev="v9") == (
        "data.x: revision 'v9' not found in this repository (a tag, branch or commit of it)")
    assert fails(path="data/nope.csv") == (
        f"data.x: data/nope.csv is not tracked by DVC at HEAD ({head}) in this repository: no "
        "data/nope.csv.dvc and no dvc.lock output names it; track it with `dvc add data/nope.csv` "
        "and commit the .dvc file")
    assert fails(path="images/cats") == (
        "data.x: images/cats is inside images, which images.dvc tracks as one directory at HEAD; "
        "declare `path: images` instead")
    assert fails(path="../elsewhere") == (
        "data.x: path '../elsewhere' must name a file or directory inside the repository")
    assert fails(path="ds", repo="../nowhere", rev="v1") == (
        f"data.x: repo '../nowhere': no such directory {repos.main}/../nowhere; give `repo:` as a "
        "Git URL or the path of a local clone")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert error(pin_input, str(plain), DataInput("x", "a.csv")) == (
        f"data.x: {plain} is not in a Git repository: data pins are read from Git; run `git init` "
        "and commit the .dvc files")


def test_pipeline_outputs_are_pinned_from_dvc_lock(repos: Repos) -> None:
    root = str(repos.main)
    pin = pin_input(root, DataInput("model", "pipe/work/model.bin"))  # the stage has `wdir: work`
    assert (pin.md5, pin.dvc) == (md5(b"model v1\n"), 3)
    assert check(root, pin).ok


def test_a_project_below_the_top_of_its_repository(repos: Repos) -> None:
    root = str(repos.main / "pipe")  # paths are the project's; the DVC project is main/
    pin = pin_input(root, DataInput("model", "work/model.bin"))
    assert (pin.path, pin.md5) == ("work/model.bin", md5(b"model v1\n"))
    (repos.main / "pipe" / "work" / "model.bin").unlink()
    assert check(root, pin).state == "missing"
    assert pull(root, pin).ok
    assert (repos.main / "pipe" / "work" / "model.bin").read_bytes() == b"model v1\n"


# --- verify and pull ------------------------------------------------------------------------


def test_pin_at_v1_with_v2_in_the_workspace_is_refused_then_pulled(repos: Repos) -> None:
    root = str(repos.main)
    train = pin_input(root, DataInput("train", "data/train.csv", rev="v1"))
    images = pin_input(root, DataInput("images", "images", rev="v1"))
    assert check(root, train) == Status("train", "data/train.csv", "differs", md5(TRAIN_V1),
                                        md5(TRAIN_V2))
    found = check(root, images).found
    assert error(require, root, [train, images]) == (
        "data.train: data/train.csv does not match its pin\n"
        f"  expected: {md5(TRAIN_V1)} (v1, commit {train.sha[:12]})\n"
        f"  found:    {md5(TRAIN_V2)}\n"
        "  fix:      mlproject data pull train   (or: mlproject run --pull)\n"
        "data.images: images does not match its pin\n"
        f"  expected: {images.md5} (v1, commit {images.sha[:12]})\n"
        f"  found:    {found}\n"
        "  fix:      mlproject data pull images   (or: mlproject run --pull)")
    assert pull(root, train).ok and pull(root, images).ok
    assert (repos.main / "data" / "train.csv").read_bytes() == TRAIN_V1
    assert tree(repos.main / "images") == IMAGES_V1  # the file v2 added is gone
    assert [s.state for s in require(root, [train, images])] == ["matches", "matches"]
    assert not list(repos.main.rglob(".mlproject-pull-*"))


def test_pull_into_a_fresh_clone_reads_the_local_remote(repos: Repos) -> None:
    clone = repos.clone()
    for name, path in (("train", "data/train.csv"), ("images", "images"), ("model", "pipe/work/model.bin")):
        pin = pin_input(str(clone), DataInput(name, path))
        assert check(str(clone), pin).state == "missing"
        assert pull(str(clone), pin).ok
        assert check(str(clone), pin).ok
    assert tree(clone / "images") == IMAGES_V2
    assert repos.git(clone, "status", "--porcelain") == ""


def test_a_corrupted_remote_object_is_refused_and_nothing_moves(repos: Repos) -> None:
    clone = repos.clone()
    before = sorted(os.listdir(clone))
    pin = pin_input(str(clone), DataInput("images", "images", rev="v1"))
    bad = md5(IMAGES_V1["cats/k\u00e4tzchen 1.png"])
    corrupt(obj(repos.remote, bad))
    assert error(pull, str(clone), pin) == (
        f"data.images: images/cats/k\u00e4tzchen 1.png is corrupted: expected md5 {bad}, but remote "
        f"'store' ({repos.remote}) holds {md5(b'corrupted')}; nothing was changed. Push a sound "
        "copy (`dvc push` where the data is intact) or delete the corrupted object")
    assert sorted(os.listdir(clone)) == before  # no images/, no temporary directory


def test_a_corrupted_object_everywhere_leaves_the_workspace_as_it_was(repos: Repos) -> None:
    root = str(repos.main)
    pin = pin_input(root, DataInput("train", "data/train.csv", rev="v1"))
    cache = repos.main / ".dvc" / "cache"
    corrupt(obj(cache, pin.md5), b"bad cache")
    corrupt(obj(repos.remote, pin.md5), b"bad remote")
    message = error(pull, root, pin)
    assert f"the DVC cache of this repository ({cache}) holds {md5(b'bad cache')}" in message
    assert f"remote 'store' ({repos.remote}) holds {md5(b'bad remote')}" in message
    assert (repos.main / "data" / "train.csv").read_bytes() == TRAIN_V2
    assert sorted(p.name for p in (repos.main / "data").iterdir()) == [".gitignore", "train.csv",
                                                                       "train.csv.dvc"]


def test_a_corrupted_cache_object_falls_through_to_the_remote(repos: Repos) -> None:
    root = str(repos.main)
    pin = pin_input(root, DataInput("train", "data/train.csv", rev="v1"))
    corrupt(obj(repos.main / ".dvc" / "cache", pin.md5))
    assert pull(root, pin).ok
    assert (repos.main / "data" / "train.csv").read_bytes() == TRAIN_V1


def test_a_missing_remote_is_a_clear_error(repos: Repos) -> None:
    clone = repos.clone()
    pin = pin_input(str(clone), DataInput("train", "data/train.csv"))
    shutil.rmtree(repos.remote)
    assert error(pull, str(clone), pin) == (
        f"data.train: data/train.csv (md5 {pin.md5}) is in none of: the DVC cache of this "
        f"repository ({clone}/.dvc/cache)\n"
        f"  the DVC remote 'store' of this repository is {repos.remote}, which does not exist "
        "(check `dvc remote list`, or mount it)\n"
        "  fix: `dvc push` from where the data exists, or fix the remote")
    (clone / ".dvc" / "config").write_text("[core]\n    autostage = true\n")
    assert "\n  this repository has no default DVC remote (`dvc remote add -d NAME URL`)\n" in \
        error(pull, str(clone), pin)
    assert not (clone / "data" / "train.csv").exists()


def test_a_dirty_workspace_is_refused_and_unsaved_changes_are_kept(repos: Repos) -> None:
    root = str(repos.main)
    pin = pin_input(root, DataInput("train", "data/train.csv"))
    edited = repos.main / "data" / "train.csv"
    hand = b"edited by hand\n"
    edited.write_bytes(hand)
    assert check(root, pin).found == md5(hand)
    assert error(pull, root, pin) == (
        f"data.train: data/train.csv holds changes that are in no DVC cache (md5 "
        f"{md5(hand)}); pulling would lose them. Save them (`dvc add "
        "data/train.csv`), or move them away, then pull again (--force discards them)")
    assert edited.read_bytes() == hand
    assert pull(root, pin, force=True).ok and edited.read_bytes() == TRAIN_V2
    # saved with `dvc add` but not committed: the pin stays at HEAD, and the saved version is
    # safe in the cache, so pulling may replace it
    edited.write_bytes(b"a,b\n9,9\n")
    repos.dvc(repos.main, "add", "-q", "data/train.csv")
    assert pin_input(root, DataInput("train", "data/train.csv")).md5 == md5(TRAIN_V2)
    assert check(root, pin).state == "differs"
    assert pull(root, pin).ok and edited.read_bytes() == TRAIN_V2
    (repos.main / "images" / "extra.txt").write_bytes(b"extra\n")
    images = pin_input(root, DataInput("images", "images"))
    assert "holds changes that are in no DVC cache" in error(pull, root, images)


def test_dvc2_files_are_read_and_hashed_the_dvc2_way(repos: Repos) -> None:
    root = str(repos.main)
    notes = pin_input(root, DataInput("notes", "legacy/notes.txt"))
    legacy = pin_input(root, DataInput("legacy", "legacy_dir"))
    assert (notes.dvc, legacy.dvc, notes.kind) == (2, 2, "md5-dos2unix")
    assert notes.md5 == md5(LEGACY_TEXT.replace(b"\r\n", b"\n")) != md5(LEGACY_TEXT)
    assert (legacy.nfiles, legacy.size) == (2, sum(map(len, LEGACY_DIR.values())))
    assert check(root, notes).ok and check(root, legacy).ok
    # DVC itself reads the hand-written files the same way
    assert "up to date" in repos.dvc(repos.main, "status", "legacy/notes.txt.dvc", "legacy_dir.dvc")
    clone = repos.clone()
    assert pull(str(clone), notes).ok and pull(str(clone), legacy).ok  # legacy object layout
    assert (clone / "legacy" / "notes.txt").read_bytes() == LEGACY_TEXT  # CRLF kept on disk
    assert tree(clone / "legacy_dir") == LEGACY_DIR


def test_md5_dos2unix_reproduces_dvc2_quirks(tmp_path: Path) -> None:
    from dvc_data.hashfile.hash import file_md5 as dvc_file_md5

    chunk = verify.CHUNK
    cases = {
        "crlf": b"a\r\nb\r\n",
        "binary": b"\0\r\nbinary\r\n",
        "empty": b"",
        "high-bytes": bytes(range(128, 256)) * 4 + b"\r\n",
        "straddle": b"x" * (chunk - 1) + b"\r\n" + b"y\r\n",  # a CRLF across two reads stays
        "text-then-binary": b"text\r\n" * 100 + b"\0" * chunk + b"\r\n",  # judged once, up front
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert verify.file_hash(str(path), "md5-dos2unix") == dvcrepos.md5_dvc2(data), name
        if name != "text-then-binary":  # DVC 3's reader of DVC 2 files judges every 1 MiB read
            assert verify.file_hash(str(path), "md5-dos2unix") == dvc_file_md5(
                str(path), name="md5-dos2unix"), name
    assert verify.file_hash(str(tmp_path / "straddle"), "md5-dos2unix") != md5(
        cases["straddle"].replace(b"\r\n", b"\n"))


def test_a_warm_check_costs_stats_not_reads(repos: Repos, monkeypatch: pytest.MonkeyPatch) -> None:
    root = str(repos.main)
    pin = pin_input(root, DataInput("images", "images"))
    old = time.time() - 60  # older than the racy window: hashes are remembered
    for path in (repos.main / "images").rglob("*"):
        os.utime(path, (old, old))
    assert check(root, pin).ok
    reads: list[str] = []
    real = verify.file_hash
    monkeypatch.setattr(verify, "file_hash", lambda path, kind: reads.append(path) or real(path, kind))
    assert check(root, pin).ok and reads == []
    readme = repos.main / "images" / "README.md"
    readme.write_bytes(b"# IMAGES\n")  # same size, new mtime
    assert check(root, pin).state == "differs" and reads == [str(readme)]


def test_the_stat_cache_heals_and_skips_files_too_young_to_trust(repos: Repos) -> None:
    root = str(repos.main)
    pin = pin_input(root, DataInput("train", "data/train.csv"))
    old = time.time() - 60
    os.utime(repos.main / "data" / "train.csv", (old, old))
    assert check(root, pin).ok
    [entry] = (repos.main / ".mlproject" / "cache" / "data").iterdir()
    assert (repos.main / ".mlproject" / ".gitignore").read_text().endswith("*\n")
    assert json.loads(entry.read_text())["files"][""][3:] == ["md5", md5(TRAIN_V2)]
    entry.write_text("{broken")
    assert check(root, pin).ok
    assert json.loads(entry.read_text())["path"] == "data/train.csv"
    (repos.main / "data" / "train.csv").write_bytes(TRAIN_V2)  # rewritten just now
    assert check(root, pin).ok
    assert json.loads(entry.read_text())["files"] == {}  # too young: hashed, not remembered


def test_a_same_size_edit_with_the_mtime_put_back_is_seen(repos: Repos) -> None:
    root = str(repos.main)
    pin = pin_input(root, DataInput("images", "images"))
    readme = repos.main / "images" / "README.md"
    old = time.time_ns() - 60 * 10**9
    for path in (repos.main / "images").rglob("*"):
        os.utime(path, ns=(old, old))
    assert check(root, pin).ok  # hashed and remembered: older than the racy window
    with open(readme, "r+b") as handle:  # same inode, same size, then the mtime put back
        handle.write(b"# IMAGES\n")
    os.utime(readme, ns=(old, old))
    assert check(root, pin).state == "differs"


def test_a_stat_cache_of_the_old_shape_is_ignored_and_rewritten(repos: Repos) -> None:
    root = str(repos.main)
    pin = pin_input(root, DataInput("train", "data/train.csv"))
    train = repos.main / "data" / "train.csv"
    old = time.time() - 60
    os.utime(train, (old, old))
    st = train.stat()
    cache = verify.StatCache(root, pin.local)
    cache.file.parent.mkdir(parents=True, exist_ok=True)
    cache.file.write_text(json.dumps({"path": "data/train.csv", "files": {  # as before ctime
        "": [st.st_ino, st.st_size, st.st_mtime_ns, "md5", md5(b"a lie")]}}))
    assert check(root, pin).ok
    written = json.loads(cache.file.read_text())
    assert written["format"] == 2
    assert written["files"][""] == [st.st_ino, st.st_size, [st.st_mtime_ns, st.st_ctime_ns],
                                    "md5", md5(TRAIN_V2)]


def test_a_workspace_of_dvc_symlinks_matches_its_pins(repos: Repos) -> None:
    """`cache.type: symlink` makes every workspace file a link into the DVC cache: followed,
    as DVC follows links, the data is the pinned data."""
    root = str(repos.main)
    repos.dvc(repos.main, "config", "--local", "cache.type", "symlink")
    repos.dvc(repos.main, "checkout", "--relink", "images", "data/train.csv.dvc")
    assert (repos.main / "data" / "train.csv").is_symlink()
    assert any(p.is_symlink() for p in (repos.main / "images").rglob("*"))
    for name, path in (("images", "images"), ("train", "data/train.csv")):
        assert check(root, pin_input(root, DataInput(name, path))).ok


@pytest.mark.parametrize(("make", "why"), [
    (lambda d: (d / "broken").symlink_to("gone"), "images/broken is a broken link (to gone)"),
    (lambda d: (d / "loop").symlink_to("loop"), "images/loop is a link loop"),
    (lambda d: (d / "sub").symlink_to("cats"), "images/sub is a link to a directory: DVC leaves "
     "such a link out of a directory's hash; replace it with the directory itself"),
    (lambda d: os.mkfifo(d / "pipe"), "images/pipe is a FIFO (named pipe): only regular files, "
     "directories and links are hashed (special files are never opened: reading one can block "
     "forever)"),
    (lambda d: (d / "to-pipe").symlink_to("../a-fifo") or os.mkfifo(d.parent / "a-fifo"),
     "images/to-pipe is a link to a FIFO (named pipe)"),
])
def test_what_dvc_would_skip_hang_on_or_crash_on_is_refused_with_a_reason(
        repos: Repos, make: Any, why: str) -> None:
    root = str(repos.main)
    pin = pin_input(root, DataInput("images", "images"))
    make(repos.main / "images")
    assert why in error(check, root, pin)


def test_an_input_from_another_repository(repos: Repos) -> None:
    root = str(repos.main)
    v1 = pin_input(root, DataInput("ds", "ds", rev="v1", repo="../source"))
    assert (v1.repo, v1.local, v1.sha) == (
        "../source", ".mlproject/data/ds/ds", repos.git(repos.source, "rev-parse", "v1").strip())
    assert check(root, v1).state == "missing"
    assert pull(root, v1).ok
    landed = repos.main / ".mlproject" / "data" / "ds" / "ds"
    assert tree(landed) == SOURCE_V1
    shutil.rmtree(repos.source / ".dvc" / "cache")  # now from its remote, at the pinned commit
    v2 = pin_input(root, DataInput("ds", "ds", rev="v2", repo="../source"))
    assert check(root, v2).state == "differs"
    assert pull(root, v2).ok and tree(landed) == SOURCE_V2  # ours to replace: no --force
    assert repos.git(repos.main, "status", "--porcelain") == ""


def test_a_repository_url_is_cloned_once_and_fetched_for_new_revisions(repos: Repos) -> None:
    root = str(repos.main)
    url = repos.source.as_uri()
    v1 = pin_input(root, DataInput("ds", "ds", rev="v1", repo=url))
    [clone] = (Path(os.environ["MLPROJECT_CACHE_DIR"]) / "repos").iterdir()
    assert repos.git(clone, "rev-parse", "--is-bare-repository").strip() == "true"
    # a bare clone cannot resolve the source's relative remote: it says so
    assert "is a relative path (../../source-remote), which only a local clone can resolve" in \
        error(pull, root, v1)
    repos.dvc(repos.source, "remote", "modify", "store", "url", str(repos.source_remote))
    repos.git(repos.source, "commit", "-q", "-am", "absolute remote")
    repos.git(repos.source, "tag", "v3")
    v3 = pin_input(root, DataInput("ds", "ds", rev="v3", repo=url))  # fetched: v3 is new
    assert v3.md5 == pin_input(root, DataInput("ds", "ds", rev="v2", repo=url)).md5
    assert pull(root, v3).ok
    assert tree(repos.main / ".mlproject" / "data" / "ds" / "ds") == SOURCE_V2
    (clone / "HEAD").unlink()  # a broken clone is made again
    assert pin_input(root, DataInput("ds", "ds", rev="v1", repo=url)).sha == v1.sha


def test_imported_data_comes_from_the_repository_it_was_imported_from(repos: Repos) -> None:
    clone = repos.clone()  # no cache, and main's remote never held the imported data
    pin = pin_input(str(clone), DataInput("imp", "imported"))
    assert pin.md5 == yaml.safe_load((clone / "imported.dvc").read_text())["outs"][0]["md5"]
    assert pull(str(clone), pin).ok
    assert tree(clone / "imported") == SOURCE_V1


def test_other_remotes_go_through_dvc_with_the_same_verification(repos: Repos) -> None:
    clone = repos.clone()
    # `remote://base` is a remote DVC resolves itself: the path a cloud remote takes
    (clone / ".dvc" / "config.local").write_text(
        f"[core]\n    remote = api\n['remote \"base\"']\n    url = {repos.remote}\n"
        "['remote \"api\"']\n    url = remote://base\n")
    images = pin_input(str(clone), DataInput("images", "images", rev="v1"))
    train = pin_input(str(clone), DataInput("train", "data/train.csv"))
    assert pull(str(clone), images).ok and pull(str(clone), train).ok
    assert tree(clone / "images") == IMAGES_V1
    shutil.rmtree(clone / "images")
    bad = md5(IMAGES_V1["README.md"])
    corrupt(obj(repos.remote, bad))
    assert error(pull, str(clone), images) == (
        f"data.images: images/README.md from the remote is corrupted: expected md5 {bad}, got "
        f"{md5(b'corrupted')}; nothing was changed")
    assert not (clone / "images").exists()


def test_a_native_pull_does_not_import_dvc(repos: Repos) -> None:
    clone = repos.clone()
    script = ("import sys\nfrom mlproject.runner.data import pull, pin_input\n"
              "from mlproject.spec.model import DataInput\n"
              f"pin = pin_input({str(clone)!r}, DataInput('images', 'images'))\n"
              f"assert pull({str(clone)!r}, pin).ok\n"
              "assert not [m for m in sys.modules if m == 'dvc' or m.startswith('dvc.')]\n")
    subprocess.run([sys.executable, "-c", script], check=True, env=repos.env)
    assert tree(clone / "images") == IMAGES_V2


# --- data status ----------------------------------------------------------------------------


def test_data_status_lists_every_input(repos: Repos) -> None:
    root = str(repos.main)
    rows = data_status(root, {
        "train": DataInput("train", "data/train.csv", rev="v1"),
        "images": DataInput("images", "images"),
        "gone": DataInput("gone", "data/nope.csv"),
        "ds": DataInput("ds", "ds", rev="v1", repo="../source"),
    })
    found = rows_json(rows)
    json.dumps(found)
    assert [(row["name"], row["state"]) for row in found] == [
        ("train", "differs"), ("images", "matches"), ("gone", "error"), ("ds", "missing")]
    assert (found[0]["pin"]["md5"], found[0]["found"]) == (md5(TRAIN_V1), md5(TRAIN_V2))
    assert found[2]["error"].startswith("data.gone: data/nope.csv is not tracked by DVC")
    lines = render(rows).splitlines()
    assert lines[0].split() == ["NAME", "PATH", "VERSION", "MD5", "STATE"]
    assert lines[1].split()[:3] == ["train", "data/train.csv", f"v1@{rows[0].pin.sha[:8]}"]  # type: ignore[union-attr]
    assert lines[1].endswith(f"differs (found {md5(TRAIN_V2)[:12]})")
    assert lines[2].endswith("matches") and lines[4].endswith("missing")
    assert lines[5].startswith("data.gone:")


# --- the command line: plan, run, run --pull, data status, data pull ------------------------

PINNED = """
data:
  train: {path: data/train.csv, rev: v1}
  images: {path: images}
entry_points:
  main:
    data: [train, images]
    command: "python read.py {data.train}"
    outputs: [seen.txt]
"""
READ = ("import os, sys\n"
        "open('seen.txt', 'wb').write(open(sys.argv[1], 'rb').read()"
        " + os.environ['MLPROJECT_DATA_IMAGES'].encode())\n")


def _project(repos: Repos) -> Path:
    (repos.main / "MLproject").write_text(PINNED)
    (repos.main / "read.py").write_text(READ)
    return repos.main


def test_run_refuses_data_that_does_not_match_then_pulls_it(repos: Repos, cli: Any) -> None:
    root = _project(repos)
    plan = json.loads(cli("plan", str(root), "--json").out)
    pins = plan["steps"][0]["data"]
    assert pins["train"]["md5"] == md5(TRAIN_V1) and pins["train"]["rev"] == "v1"
    assert len(pins["train"]["sha"]) == 40 and pins["images"]["md5"].endswith(".dir")
    refused = cli("run", str(root))
    assert refused.code == 2
    assert "data.train: data/train.csv does not match its pin" in refused.err
    assert f"expected: {md5(TRAIN_V1)} (v1, commit" in refused.err
    assert f"found:    {md5(TRAIN_V2)}" in refused.err
    assert "fix:      mlproject data pull train" in refused.err
    assert not (root / "seen.txt").exists()
    assert (root / "data" / "train.csv").read_bytes() == TRAIN_V2  # nothing touched
    pulled = cli("run", str(root), "--pull")
    assert pulled.code == 0, pulled.err
    assert (root / "seen.txt").read_bytes() == TRAIN_V1 + b"images"
    from mlproject.runner.state import records

    record = records.list_runs(str(root))[-1]
    assert record["data"]["train"]["md5"] == md5(TRAIN_V1)
    assert record["data"]["train"]["sha"] == pins["train"]["sha"]


def test_the_pin_moves_the_fingerprint(repos: Repos, cli: Any) -> None:
    root = _project(repos)
    first = json.loads(cli("plan", str(root), "--json").out)["steps"][0]["fingerprint"]
    (root / "MLproject").write_text(PINNED.replace("rev: v1", "rev: v2"))
    second = json.loads(cli("plan", str(root), "--json").out)["steps"][0]["fingerprint"]
    assert first != second


def test_data_status_and_pull_verbs(repos: Repos, cli: Any) -> None:
    root = _project(repos)
    status = cli("data", "status", str(root), "--json")
    assert status.code == 3  # exitcodes.DIFFERS
    rows = {row["name"]: row for row in json.loads(status.out)}
    assert rows["train"]["state"] == "differs" and rows["images"]["state"] == "matches"
    assert "differs (found" in cli("data", "status", str(root)).out
    assert cli("data", "pull", str(root), "nope").code == 2
    pulled = cli("data", "pull", str(root), "train")
    assert pulled.code == 0, pulled.err
    assert pulled.out.startswith("train: data/train.csv matches")
    assert cli("data", "status", str(root)).code == 0


def test_an_unknown_revision_is_a_usage_error(repos: Repos, cli: Any) -> None:
    root = _project(repos)
    (root / "MLproject").write_text(PINNED.replace("rev: v1", "rev: v9"))
    result = cli("plan", str(root))
    assert result.code == 2 and "v9" in result.err

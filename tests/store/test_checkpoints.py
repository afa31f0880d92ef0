"""StoreCheckpoint: bytes at checkpoints/<path>, replaced whole, beside siblings, picklable."""

from __future__ import annotations

import pickle

import pytest

from quantfleet.errors import StoreError
from quantfleet.store import Store, StoreCheckpoint


def test_read_write_sibling_and_delete(store):
    ck = StoreCheckpoint(store, "evolution/abc/evolve.json")
    assert ck.read() is None
    ck.write(b'{"round": 1}')
    ck.write(b'{"round": 2}')
    assert ck.read() == b'{"round": 2}'
    rec = ck.sibling("evolve.config.json")
    assert rec.key == "checkpoints/evolution/abc/evolve.config.json" and rec.read() is None
    assert str(ck).endswith("/checkpoints/evolution/abc/evolve.json")
    assert ck.folder == str(ck).rsplit("/", 1)[0]
    ck.delete()
    ck.delete()  # absent: nothing happens
    assert ck.read() is None


def test_it_travels_as_its_url_and_key(tmp_path):
    ck = StoreCheckpoint(Store.open(str(tmp_path / "lake")), "evolution/x/evolve.json")
    ck.write(b"state")
    back = pickle.loads(pickle.dumps(ck))
    assert back == ck and back.read() == b"state"
    assert (tmp_path / "lake" / "checkpoints" / "evolution" / "x" / "evolve.json").exists()


def test_in_s3(s3_url):
    ck = StoreCheckpoint(s3_url, "evolution/y/evolve.json")
    ck.write(b"one")
    assert StoreCheckpoint(Store.open(s3_url), "evolution/y/evolve.json").read() == b"one"
    assert str(ck) == f"{s3_url}/checkpoints/evolution/y/evolve.json"


@pytest.mark.parametrize("bad", ["../x", "/abs", "a//b", "", "a b"])
def test_a_bad_path_is_one_line(bad, tmp_path):
    with pytest.raises(StoreError, match=r"checkpoint path .*e\.g\. 'evolution/") as e:
        StoreCheckpoint(str(tmp_path), bad)
    assert "\n" not in str(e.value)

"""Hostile archives: names that try to leave --out, edited content, lost or reordered records."""

import json

import pytest
import torch
from safetensors.torch import save_file

from slimvision.ckpt import CompressConfig, compress_run, inspect, restore
from slimvision.errors import ArtifactError, ConfigError


@pytest.fixture(scope="module")
def run_archive(tmp_path_factory):
    """A run-shaped archive (checkpoints/epoch_*/ with json files, run files) of 3 checkpoints, lossy."""
    root = tmp_path_factory.mktemp("hostile")
    run = root / "run"
    torch.manual_seed(0)
    (run / "checkpoints").mkdir(parents=True)
    weight = torch.randn(8, 8)
    for epoch in (1, 2, 3):
        weight = weight + 0.1 * torch.randn(8, 8)
        directory = run / "checkpoints" / f"epoch_{epoch:04d}"
        directory.mkdir()
        save_file({"conv.weight": weight.contiguous(), "conv.bias": torch.randn(8), "bn.num_batches_tracked": torch.tensor(epoch)}, str(directory / "model.safetensors"))
        save_file({"state/conv.weight/exp_avg": torch.randn(8, 8), "state/conv.weight/exp_avg_sq": torch.rand(8, 8), "state/conv.weight/step": torch.tensor(float(epoch))}, str(directory / "optimizer.safetensors"))
        (directory / "state.json").write_text(json.dumps({"epoch": epoch}))
    (run / "run.json").write_text(json.dumps({"model": "small_cnn"}))
    archive = root / "run.svckpt"
    compress_run(run, archive, CompressConfig())
    return archive


def _files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _set_name(value):
    def edit(records):
        records[-1][0]["name"] = value
    return edit


def _add_json(key):
    def edit(records):
        records[-1][0]["json"][key] = '{"owned": true}'
    return edit


def _add_run_file(key):
    def edit(records):
        records[0][0]["run_files"][key] = "owned"
    return edit


def _set_tensor_file(value):
    def edit(records):
        for entry in records[-1][0]["tensors"]:
            if entry["file"] == "model.safetensors":
                entry["file"] = value
    return edit


VECTORS = {
    "name-dotdot": _set_name("../../escaped"),
    "name-absolute": _set_name("{victim}/escaped"),
    "name-dot": _set_name(".."),
    "json-dotdot": _add_json("../../../escaped.json"),
    "json-absolute": _add_json("{victim}/escaped.json"),
    "runfile-dotdot": _add_run_file("../../escaped.json"),
    "runfile-absolute": _add_run_file("{victim}/escaped.json"),
    "runfile-unknown": _add_run_file("model.safetensors"),
    "tensorfile-dotdot": _set_tensor_file("../../../escaped.safetensors"),
    "tensorfile-absolute": _set_tensor_file("{victim}/escaped.safetensors"),
    "tensorfile-backslash": _set_tensor_file("..\\..\\escaped.safetensors"),
}


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_traversal_in_any_name_is_refused_with_one_line_and_writes_nothing_outside_out(run_archive, tmp_path, cli, forge_archive, vector):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")

    def edit(records):
        # the placeholder {victim} becomes an absolute path to a directory the archive must not reach
        text = json.dumps([header for header, _ in records]).replace("{victim}", str(victim))
        for (header, _), new in zip(records, json.loads(text)):
            header.clear()
            header.update(new)
        VECTORS[vector](records)
        text = json.dumps([header for header, _ in records]).replace("{victim}", str(victim))
        for (header, _), new in zip(records, json.loads(text)):
            header.clear()
            header.update(new)

    forged = forge_archive(run_archive, tmp_path / "forged.svckpt", edit)
    out = tmp_path / "deep" / "a" / "b" / "out"
    before = _files_under(tmp_path)
    code, stdout, err = cli("ckpt", "restore", forged, "--last", "--out", out)
    assert code == 1, stdout
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "plain file name" in err or "is not one of" in err, err
    assert _files_under(tmp_path) == before  # nothing anywhere: no escaped file, no --out, no temp left
    assert (victim / "keep.txt").read_text() == "precious"
    with pytest.raises(ArtifactError):
        restore(forged, out)


def test_unforged_archive_restores_and_digests_match(run_archive, tmp_path):
    restore(run_archive, tmp_path / "r", None)
    assert (tmp_path / "r" / "checkpoints" / "epoch_0003" / "model.safetensors").is_file()
    assert (tmp_path / "r" / "run.json").is_file()


def _edit_blob_byte(records):
    header, blobs = records[2]
    entry = next(e for e in header["tensors"] if e["encoding"] == "weight")
    codebook = bytearray(blobs[entry["blob_index"] + 1])
    codebook[0] ^= 0x40  # a different fp16 level: a different tensor, same sizes
    blobs[entry["blob_index"] + 1] = bytes(codebook)


def _edit_raw_blob(records):
    header, blobs = records[1]
    entry = next(e for e in header["tensors"] if e["encoding"] in ("raw", "xor"))
    data = bytearray(blobs[entry["blob_index"]])
    data[-1] ^= 1
    blobs[entry["blob_index"]] = bytes(data)


def _relabel_dtype(records):
    entry = next(e for e in records[1][0]["tensors"] if e["dtype"] == "float32" and e["encoding"] in ("raw", "xor"))
    entry["dtype"] = "int32"


def _edit_state_json(records):
    records[2][0]["json"]["state.json"] = json.dumps({"epoch": 1})


def _drop_last_and_recount(records):
    """The last checkpoint dropped and the declared count lowered to match: --last must still not restore epoch 2."""
    records.pop()
    records[0][0]["n_checkpoints"] -= 1


@pytest.mark.parametrize(
    "edit,needle",
    [
        (_edit_blob_byte, "content digest"),
        (_edit_raw_blob, "content digest"),
        (_relabel_dtype, "content digest"),
        (lambda r: r.pop(), "records missing"),  # the last checkpoint dropped: --last must not restore epoch 2
        (lambda r: r.pop(2), "records missing|digest"),
        (lambda r: [r[0], r[2], r[1], r[3]], "digest|residual"),
        (lambda r: [r[0], r[1], r[1], r[2], r[3]], "digest|more checkpoints"),
        (_edit_state_json, "json files or layout do not match"),
        (_drop_last_and_recount, "content digest|layout"),
    ],
    ids=["codebook", "raw-blob", "dtype-relabel", "drop-last", "drop-middle", "reorder", "repeat", "state-json", "drop-last-recount"],
)
def test_edited_content_and_lost_records_are_refused_even_with_valid_checksums(run_archive, tmp_path, forge_archive, edit, needle):
    forged = forge_archive(run_archive, tmp_path / "forged.svckpt", edit)
    with pytest.raises(ArtifactError, match=needle):
        restore(forged, tmp_path / "out", None)
    assert not (tmp_path / "out").exists()


def test_edited_header_with_stale_digest_is_refused(run_archive, tmp_path):
    """Editing a header but keeping the old chain (only the crc32 recomputed) fails the record digest."""
    import struct
    import zlib

    import zstandard

    from slimvision.ckpt import container

    data = bytearray(run_archive.read_bytes())
    offset = len(container.MAGIC) + 4
    for _ in range(3):  # walk to the third record (checkpoint 1)
        (length,) = struct.unpack_from("<Q", data, offset + 4)
        start = offset
        offset += 4 + 8 + length + 4
    (length,) = struct.unpack_from("<Q", data, start + 4)
    payload = zstandard.ZstdDecompressor().decompress(bytes(data[start + 12 : start + 12 + length]))
    edited = payload.replace(b'\\"epoch\\": 2', b'\\"epoch\\": 9')  # state.json inside the header, same length
    assert edited != payload
    compressed = zstandard.ZstdCompressor().compress(edited)
    record = container.RECORD_TAG + struct.pack("<Q", len(compressed)) + compressed + struct.pack("<I", zlib.crc32(compressed))
    forged = tmp_path / "stale.svckpt"
    forged.write_bytes(bytes(data[:start]) + record + bytes(data[start + 12 + length + 4 :]))
    with pytest.raises(ArtifactError, match="digest mismatch"):
        restore(forged, tmp_path / "out", 1)


def test_malformed_fields_name_the_field(run_archive, tmp_path, forge_archive):
    def edit(records):
        records[1][0]["tensors"][0]["shape"] = "8x8"
    forged = forge_archive(run_archive, tmp_path / "f.svckpt", edit)
    with pytest.raises(ArtifactError, match=r"checkpoint 0 tensor 0: field 'shape'"):
        restore(forged, tmp_path / "out", 0)

    def unknown_dtype(records):
        records[1][0]["tensors"][0]["dtype"] = "Tensor"  # once looked up with getattr(torch, ...)
    forged = forge_archive(run_archive, tmp_path / "g.svckpt", unknown_dtype)
    with pytest.raises(ArtifactError, match="field 'dtype'"):
        restore(forged, tmp_path / "out", 0)

    def reported_size(records):
        records[1][0]["tensors"][0]["raw_bytes"] = "many"  # only inspect reads it
    forged = forge_archive(run_archive, tmp_path / "h.svckpt", reported_size)
    with pytest.raises(ArtifactError, match="field 'raw_bytes'"):
        inspect(forged)


def test_version_1_archives_are_refused_with_a_clear_message(run_archive, tmp_path):
    data = bytearray(run_archive.read_bytes())
    data[8] = 1
    (tmp_path / "v1.svckpt").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="version 1 has no content digests"):
        restore(tmp_path / "v1.svckpt", tmp_path / "out", 0)


def test_restore_never_replaces_its_archive_or_an_existing_directory(run_archive, tmp_path, cli):
    archive = tmp_path / "a.svckpt"
    archive.write_bytes(run_archive.read_bytes())
    original = archive.read_bytes()
    for out in (archive, tmp_path):  # --out is the archive, or a directory holding it
        with pytest.raises(ConfigError, match="overlaps the input"):
            restore(archive, out, 0, overwrite=True)
    assert archive.read_bytes() == original
    existing = tmp_path / "run"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    code, _, err = cli("ckpt", "restore", archive, "--index", "0", "--out", existing)
    assert code == 1 and "--overwrite" in err and (existing / "keep.txt").is_file()
    code, _, err = cli("ckpt", "restore", archive, "--index", "0", "--out", existing, "--overwrite")
    assert code == 0, err
    assert not (existing / "keep.txt").exists() and (existing / "checkpoints" / "epoch_0001").is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no backup or temp left behind

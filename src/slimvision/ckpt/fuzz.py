"""A seeded fuzzer for `.svckpt` archives and the oracle that judges each restore (used by tests and benchmarks).

Three kinds of mutation, each producing an archive that a restore must either refuse with a
SlimvisionError or restore to exactly what the unmutated archive restores:
- bytes: flips, truncation, insertion and deletion anywhere in the file (the framing's crc32
  catches most of these);
- structure: headers, blobs and the record list edited inside decoded records, then re-framed
  with valid zstd frames, crc32s and end count (the record digests are left as they were);
- forged: the same edits, re-written with a freshly computed record digest chain, as a hostile
  author who knows the format would; only the content digests stand in the way;
- traversal: one name that becomes a path (checkpoint name, JSON file, run file, tensor file) set
  to `../..`, an absolute path into a victim directory or the like, with every digest recomputed:
  a perfectly sealed hostile archive that only the name checks can refuse.
Traversal names are also among the values the structure and forged kinds write into headers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import shutil
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import zstandard

from slimvision.ckpt.container import END_TAG, MAGIC, RECORD_TAG, VERSION, decode_payload, encode_payload, header_digest
from slimvision.errors import SlimvisionError

Record = tuple[dict[str, Any], list[bytes]]
KINDS = ("bytes", "structure", "forged", "traversal")


def split_records(data: bytes) -> list[Record]:
    """The records of a well-formed archive's bytes, decoded without any verification."""
    offset, records = len(MAGIC) + 4, []
    decompressor = zstandard.ZstdDecompressor()
    while data[offset : offset + 4] == RECORD_TAG:
        (length,) = struct.unpack_from("<Q", data, offset + 4)
        payload = data[offset + 12 : offset + 12 + length]
        header, blobs = decode_payload(decompressor.decompress(payload), "corpus")
        header.pop("blobs", None)
        records.append((header, blobs))
        offset += 16 + length
    return records


def frame(records: list[Record], rechain: bool) -> bytes:
    """Archive bytes with valid zstd frames, crc32s and end count; `rechain` also recomputes the record digests."""
    compressor = zstandard.ZstdCompressor(level=3)
    out = [MAGIC + struct.pack("<HH", VERSION, 0)]
    previous = None
    for index, (header, blobs) in enumerate(records):
        header = {k: v for k, v in header.items() if k != "blobs"}
        if rechain:
            header = json.loads(json.dumps({**header, "seq": index, "previous_digest": previous}))
            header["digest"] = previous = header_digest(header)
        payload = compressor.compress(encode_payload(header, blobs))
        out.append(RECORD_TAG + struct.pack("<Q", len(payload)) + payload + struct.pack("<I", zlib.crc32(payload)))
    out.append(END_TAG + struct.pack("<I", len(records)))
    return b"".join(out)


def _values(victim: Path) -> list[Any]:
    return [
        None, 0, -1, 2**40, 1.5, float("nan"), "", "x", True, [], {}, [1, "a"], "float64", "bool", "xor", "raw", "weight",
        "../../escaped", "../../../escaped.json", "..", ".", f"{victim}/escaped", f"{victim}/escaped.json",
        f"{victim}/escaped.safetensors", "..\\..\\escaped", "epoch_0001", "model.safetensors", "state.json", "arch.json",
    ]


def mutate_json(value: Any, rng: random.Random, pool: list[Any]) -> Any:
    """Retype, drop, replace or recurse into one field somewhere inside a JSON value."""
    if isinstance(value, dict) and value and rng.random() < 0.85:
        key = rng.choice(sorted(value))
        action = rng.random()
        if action < 0.15:
            value.pop(key)
        elif action < 0.2:
            value[rng.choice([v for v in pool if isinstance(v, str)])] = copy.deepcopy(value[key])  # a field added under a hostile name
        elif action < 0.5:
            value[key] = copy.deepcopy(rng.choice(pool))
        else:
            value[key] = mutate_json(value[key], rng, pool)
        return value
    if isinstance(value, list) and value and rng.random() < 0.85:
        index = rng.randrange(len(value))
        if rng.random() < 0.15:
            value.pop(index)
        else:
            value[index] = mutate_json(value[index], rng, pool)
        return value
    if isinstance(value, int) and not isinstance(value, bool) and rng.random() < 0.5:
        return value + rng.choice([-1, 1, 7])
    return copy.deepcopy(rng.choice(pool))


def _mutate_records(records: list[Record], rng: random.Random, victim: Path) -> list[Record]:
    records = [(copy.deepcopy(h), list(b)) for h, b in records]
    pool = _values(victim)
    for _ in range(rng.randint(1, 2)):
        choice = rng.random()
        if choice < 0.45:  # a header field somewhere (names, dtypes, shapes, counts, json files, run files)
            header, _ = rng.choice(records)
            mutate_json(header, rng, pool)
        elif choice < 0.8:  # blob bytes: flip, truncate or extend one blob
            candidates = [r for r in records if r[1]]
            if not candidates:
                continue
            _, blobs = rng.choice(candidates)
            index = rng.randrange(len(blobs))
            blob = bytearray(blobs[index])
            action = rng.random()
            if action < 0.7 and blob:
                for _ in range(rng.randint(1, 3)):
                    blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
            elif action < 0.85:
                blob = blob[: rng.randrange(len(blob) + 1)]
            else:
                blob += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            blobs[index] = bytes(blob)
        else:  # the record list: drop, repeat or swap
            index = rng.randrange(len(records))
            action = rng.random()
            if action < 0.4 and len(records) > 1:
                records.pop(index)
            elif action < 0.7:
                records.insert(index, (copy.deepcopy(records[index][0]), list(records[index][1])))
            elif len(records) > 2:
                other = rng.randrange(len(records))
                records[index], records[other] = records[other], records[index]
    return records


def _traversal_names(victim: Path) -> list[str]:
    return [
        "../../escaped", "../../../escaped", "..", ".", "/", f"{victim}/escaped", f"{victim}", "a/../../escaped", "..\\..\\escaped",
        "./escaped", "escaped/../../..", "C:escaped", "\x00escaped", ".hidden", "~/escaped",
    ]


def _reseal(records: list[Record]) -> list[Record]:
    """Recompute every content digest (tensors, JSON files, layout) as the compressor would: a complete forgery."""
    from slimvision.ckpt.excp import decode_entry
    from slimvision.ckpt.verify import layout_digest, tensor_digest, tensor_place

    head = records[0][0]
    total = head.get("n_checkpoints", len(records) - 1)
    head["layout_sha256"] = layout_digest(head.get("run_files", {}), -1, total, "", None)
    previous: dict[str, Any] = {}
    for ordinal, (header, blobs) in enumerate(records[1:]):
        header["layout_sha256"] = layout_digest(header.get("json", {}), ordinal, total, header.get("name", ""), header.get("directory"))
        for entry in header.get("tensors", []):
            try:
                tensor = decode_entry(entry, blobs, previous, "forgery")
            except (SlimvisionError, TypeError, KeyError):
                continue
            entry["sha256"] = tensor_digest(tensor, tensor_place(ordinal, total, header.get("name", ""), entry.get("file", ""), entry.get("key", "")))
    return records


def _plant_traversal(records: list[Record], rng: random.Random, victim: Path) -> list[Record]:
    records = [(copy.deepcopy(h), list(b)) for h, b in records]
    value = f"{rng.choice(_traversal_names(victim))}{rng.choice(['', '.json', '.safetensors', '.pt'])}"
    header = rng.choice(records[1:])[0]
    target = rng.choice(["name", "json", "run_files", "file"])
    if target == "name":
        header["name"] = value
    elif target == "json":
        header["json"][value] = '{"escaped": true}'
    elif target == "run_files":
        records[0][0]["run_files"][value] = '{"escaped": true}'
    else:
        entry = rng.choice(header["tensors"])
        entry["file"] = value
    return _reseal(records)


def mutate(data: bytes, kind: str, rng: random.Random, victim: Path) -> bytes:
    """One mutated archive of the given kind (see the module docstring)."""
    if kind == "bytes":
        raw = bytearray(data)
        action = rng.random()
        if action < 0.2:
            return bytes(raw[: rng.randrange(len(raw))])
        if action < 0.3:
            at = rng.randrange(len(raw))
            return bytes(raw[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + raw[at:])
        if action < 0.4:
            at = rng.randrange(len(raw))
            return bytes(raw[:at] + raw[at + rng.randint(1, 16) :])
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    if kind == "traversal":
        return frame(_plant_traversal(split_records(data), rng, victim), rechain=True)
    return frame(_mutate_records(split_records(data), rng, victim), rechain=kind == "forged")


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file below `root` (directories as '<dir>')."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
        for p in sorted(root.rglob("*"))
    }


def _outside(work: Path, out: Path) -> dict[str, str]:
    """tree_digest of `work` without the restore's own --out."""
    prefix = str(out.relative_to(work))
    return {k: v for k, v in tree_digest(work).items() if k != prefix and not k.startswith(prefix + "/")}


def refusal_reason(message: str) -> str:
    """Which kind of check a refusal message comes from."""
    for needle, reason in (
        ("plain file name", "name"), ("is not one of", "name"), ("digest", "digest"), ("records missing", "order/count"),
        ("more checkpoints", "order/count"), ("position", "order/count"), ("does not follow", "order/count"), ("no checkpoint", "index"),
        ("field ", "schema"), ("bytes, expected", "blob size"), ("points at blob", "blob size"),
    ):
        if needle in message:
            return reason
    return "framing/other"


@dataclass
class FuzzTally:
    """Outcomes per mutation kind: refused, restored exactly, restored wrong content, escaped --out, crashed, leftovers."""

    counts: dict[str, dict[str, int]] = field(default_factory=lambda: {k: {} for k in KINDS})
    reasons: dict[str, int] = field(default_factory=dict)  # which check refused: name, schema, digest, order/count, framing
    slowest_s: float = 0.0
    examples: list[str] = field(default_factory=list)

    def add(self, kind: str, outcome: str, note: str = "") -> None:
        """Count one restore's outcome (and keep a few examples of bad ones)."""
        self.counts[kind][outcome] = self.counts[kind].get(outcome, 0) + 1
        if outcome == "refused":
            reason = refusal_reason(note)
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if outcome not in ("refused", "exact") and len(self.examples) < 20:
            self.examples.append(f"{kind}: {outcome}: {note}")

    def total(self, outcome: str) -> int:
        """How many restores ended in `outcome`, over all kinds."""
        return sum(c.get(outcome, 0) for c in self.counts.values())


def run_fuzz(
    corpus: list[Path], cases: int, seed: int, work: Path, restore: Callable[..., Any], kinds: tuple[str, ...] = KINDS,
    inspect: Callable[[Path], Any] | None = None,
) -> FuzzTally:
    """Mutate the corpus archives `cases` times and judge a last-checkpoint and an indexed restore of each (and `inspect`)."""
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    victim = work / "victim"
    sandbox = work / "sandbox"
    references: dict[tuple[int, int | None], dict[str, str]] = {}
    sizes = []
    for number, archive in enumerate(corpus):
        count = len(split_records(archive.read_bytes())) - 1
        sizes.append(count)
        for index in [*range(count), None]:
            out = work / f"reference-{number}-{index}"
            restore(archive, out, index)
            references[(number, index)] = tree_digest(out)
            shutil.rmtree(out)
    tally = FuzzTally()
    for case in range(cases):
        number = rng.randrange(len(corpus))
        kind = kinds[case % len(kinds)]
        shutil.rmtree(sandbox, ignore_errors=True)
        shutil.rmtree(victim, ignore_errors=True)
        (sandbox / "a" / "b").mkdir(parents=True)
        victim.mkdir()
        archive = sandbox / "fuzzed.svckpt"
        archive.write_bytes(mutate(corpus[number].read_bytes(), kind, rng, victim))
        if inspect is not None:
            try:
                json.dumps(inspect(archive))
            except SlimvisionError:
                pass
            except Exception as exc:  # noqa: BLE001
                tally.add(kind, "crashed", f"inspect: {type(exc).__name__}: {exc}"[:300])
        for index in (None, rng.randrange(sizes[number] + 1)):
            out = sandbox / "a" / "b" / "out"
            before = _outside(work, out)
            start = time.perf_counter()
            try:
                restore(archive, out, index)
            except SlimvisionError as exc:
                outcome, note = "refused", str(exc)
            except Exception as exc:  # noqa: BLE001  (anything else is a crash the fuzzer must report)
                outcome, note = "crashed", f"{type(exc).__name__}: {exc}"
            else:
                outcome = "exact" if tree_digest(out) == references.get((number, index)) else "wrong"
                note = f"case {case} index {index}"
            tally.slowest_s = max(tally.slowest_s, time.perf_counter() - start)
            after = _outside(work, out)
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            if changed:
                temp_only = all(".out." in name for name in changed)
                outcome, note = ("leftover" if temp_only else "escaped"), f"case {case} index {index}: {changed[:3]} ({note})"
            tally.add(kind, outcome, note[:300])
            shutil.rmtree(out, ignore_errors=True)
    return tally

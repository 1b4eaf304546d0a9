"""Split a matrix (or a pytest collection) into N shards that N machines run apart.

The rule, the same for ``rabbit-chaos matrix --shard K/N`` and pytest's ``--chaos-shard K/N``:

1. every item has an *identity*, a string that names what it is, not where it stands: a matrix
   cell is ``client | queue type | fault spec | repeat`` (:func:`cell_identity`), a test its
   pytest node id;
2. items are ordered by a stable hash of that identity (SHA-256, never Python's ``hash()``,
   which is salted per process), ties broken by the identity itself;
3. that order is dealt round robin, snake-wise (shards 1..N, then N..1, then 1..N, ...), so the
   first shards do not get the most expensive item of every round.

Why not position. Dealing by position makes the split depend on how the flags were written:
``--clients a,b`` and ``--clients b,a`` would give shard 1 different cells, and two CI jobs
whose command lines differ only in order would run some cells twice and others never. Sorting by
identity removes the order; hashing first spreads each client's and each fault's cells over the
shards instead of giving one shard all of one column.

Why not ``hash(identity) mod N``. It is order-independent too, but its balance is binomial: for
the default 110-cell matrix the larger of 2 shards holds up to ~60 cells and the largest of 4
up to ~34 instead of 28 (docs/scaling.md has the figures). Dealing the hash order gives every
shard ``floor`` or ``ceil`` of total / N, exactly.

Optional strata (``stratum``): items dealt stratum by stratum, the deal carrying on where the
previous stratum stopped, so each stratum is balanced too. The matrix's stratum is (scope,
expected fault phase), both functions of the fault spec alone: broker-scope cells (restart,
crash, alarms) run alone and dominate a shard's wall time, and a 25 s partition costs more than
a 4 s connection cut, so every shard gets its share of each column rather than a count-balanced
but time-skewed hand.

What is stable: for one set of items, the split (which item goes to which shard) does not
depend on their order or on the machine. What is not: adding or removing an item can move
others between shards (the deal shifts), so every shard of one matrix must be given the same
clients, faults and repeat count. matrix.json records a digest of the whole cell set
(:func:`set_digest`) so ``rabbit-chaos report`` can tell shards of one matrix from strangers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from harness.errors import ChaosError

T = TypeVar("T")

#: more shards than this is a typo (a CI matrix of 1000 jobs is not one)
MAX_SHARDS = 1000


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``total`` (1 <= index <= total); ``str()`` gives ``"K/N"``."""

    index: int
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def parse_shard(text: str, flag: str = "--shard") -> Shard:
    """``"K/N"`` -> Shard(K, N). Anything else (``0/2``, ``3/2``, ``1/0``, ``a/b``, ``2``) is a
    ChaosError naming the flag and a correct example, raised before anything boots."""
    k, slash, n = text.strip().partition("/")
    try:
        index, total = int(k), int(n)
    except ValueError:
        index = total = 0
    if not slash or not 1 <= index <= total:
        raise ChaosError(f"{flag} {text!r} is not K/N with 1 <= K <= N",
                         f"give the job's shard number and the number of jobs, e.g. {flag} 2/4 "
                         "(job 2 of 4), and the same other options to every job")
    if total > MAX_SHARDS:
        raise ChaosError(f"{flag} {text!r}: {total} shards is more than {MAX_SHARDS}",
                         f"use at most {MAX_SHARDS} jobs; a shard of a matrix is at least one cell")
    return Shard(index, total)


def stable_hash(identity: str) -> int:
    """64 bits of SHA-256 of ``identity``: the same on every machine and Python process."""
    return int.from_bytes(hashlib.sha256(identity.encode("utf-8")).digest()[:8], "big")


#: a stratum: any tuple of numbers, compared in order (the matrix: (scope rank, -expected seconds))
Stratum = tuple[float, ...]


def assign(items: Sequence[T], total: int, key: Callable[[T], str],
           stratum: Callable[[T], Stratum] | None = None) -> list[int]:
    """The shard (1-based) of each item, in the items' own order: strata in ascending order,
    within a stratum the items ordered by (:func:`stable_hash` of ``key``, ``key``) and dealt
    round robin snake-wise, the deal carrying on from one stratum to the next. Every shard gets
    floor or ceil of len(items) / total. O(n log n)."""
    if total < 1:
        raise ChaosError(f"{total} shards", "give at least one shard (K/N with N >= 1)")
    order = sorted(range(len(items)), key=lambda i: (stratum(items[i]) if stratum else (),
                                                     stable_hash(key(items[i])), key(items[i])))
    out = [0] * len(items)
    for dealt, i in enumerate(order):
        turn, seat = divmod(dealt, total)
        out[i] = seat + 1 if turn % 2 == 0 else total - seat  # snake: 1..N, then N..1
    return out


def select(items: Sequence[T], shard: Shard, key: Callable[[T], str],
           stratum: Callable[[T], Stratum] | None = None) -> list[T]:
    """The items of ``shard`` (see :func:`assign`), kept in their given order."""
    where = assign(items, shard.total, key, stratum)
    return [it for it, s in zip(items, where, strict=True) if s == shard.index]


def cell_identity(client: str, fault: str, repeat: int, queue_type: str | None = None) -> str:
    """What a matrix cell is, independent of where it stands in the matrix: the client label as
    given (``NAME@VERSION`` included, so two versions are two cells), the queue type when the
    matrix sets one, the fault spec as the engine runs it (a column label resolved), the
    repeat index."""
    return "|".join([client, queue_type or "", fault, str(repeat)])


def set_digest(identities: Sequence[str]) -> str:
    """A short digest of a whole set of identities, independent of their order: shards that
    agree on it were cut from the same matrix."""
    h = hashlib.sha256()
    for ident in sorted(identities):
        h.update(ident.encode("utf-8") + b"\n")
    return h.hexdigest()[:16]

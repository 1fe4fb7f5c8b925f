"""The server's version read from a custom-format pg_dump's header (ops/pgdump.py)."""

from __future__ import annotations

import pytest

from unistack.ops import pgdump

from .fakes import pg_dump_header as header

# the first 200 bytes of `pg_dump --format=custom --compress=1` of the stack's database (PostgreSQL 15.18, Debian 12:
# archive version 1.14); `pg_restore --list` says "Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)"
DUMP_15 = bytes.fromhex(
    "5047444d50010e0004080100010000000032000000003200000000020000000008000000000b000000007e0000000000000000000300"
    "0000617070001e00000031352e3138202844656269616e2031352e31382d302b6465623132753129001e00000031352e313820284465"
    "6269616e2031352e31382d302b64656231327531290019000000002c0d000000000000000001000000300001000000300008000000454e"
    "434f44494e470008000000454e434f44494e470002000000001e00000053455420636c6965"
)


def test_the_stacks_dump_says_its_server() -> None:
    assert pgdump.server_version(DUMP_15) == "15.18 (Debian 15.18-0+deb12u1)"


@pytest.mark.parametrize("version", [(1, 10, 0), (1, 14, 0), (1, 15, 0), (1, 16, 0)])
def test_each_archive_version_with_a_version_string(version: tuple[int, int, int]) -> None:
    assert pgdump.server_version(header(version, "16.4")) == "16.4"


def test_integers_of_another_size_and_a_long_name() -> None:
    assert pgdump.server_version(header((1, 14, 0), "14.1", int_size=8, database="n" * 300)) == "14.1"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"PGDMP",
        DUMP_15[:60],  # ends inside the version string's length
        b"-- PostgreSQL database dump\n",  # a plain-text dump
        header((1, 9, 0), "9.0"),  # before 1.10 the header held no version
        DUMP_15[:8] + b"\x00" + DUMP_15[9:],  # an integer size of 0
    ],
)
def test_not_such_a_header_says_nothing(head: bytes) -> None:
    assert pgdump.server_version(head) is None


def test_the_head_is_kept_and_every_byte_passed_on() -> None:
    given = bytearray()
    kept = pgdump.HeadKept(given.extend)
    data = DUMP_15 * 100  # 20,000 bytes
    for start in range(0, len(data), 333):
        kept(memoryview(data[start : start + 333]))
    assert bytes(given) == data
    assert bytes(kept.head) == data[: pgdump.HEAD]

"""Many writers at once: no "database is locked", no lost or duplicated turns."""

from __future__ import annotations

import threading

from store import NewImage, Store
from tests.store.conftest import png

WRITERS = 50
TURNS = 4


def test_fifty_concurrent_writers(store: Store) -> None:
    users = [store.repo.get_or_create_user("telegram", 1000 + i).id for i in range(WRITERS)]
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def write(user_id: int, n: int) -> None:
        try:
            start.wait()
            for t in range(TURNS):
                parts: list[str | NewImage] = [f"u{n} t{t}"]
                if t == 0:
                    parts.append(NewImage.from_bytes(png(n % 7)))  # shared across users
                store.repo.append_turn(user_id, "user", parts)
                store.repo.load_context(user_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(u, n)) for n, u in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    for n, user_id in enumerate(users):
        texts = [t.parts[0].text for t in store.repo.history(user_id)]
        assert texts == [f"u{n} t{t}" for t in range(TURNS)]
    assert len(set(store.blobs.all_shas())) == 7


def test_concurrent_first_contact_creates_one_user_and_one_conversation(store: Store) -> None:
    ids: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def first_message() -> None:
        try:
            start.wait()
            user = store.repo.get_or_create_user("telegram", 555)
            ids.append(store.repo.append_turn(user.id, "user", ["hi"]).conversation_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_message) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[:3]
    assert len(set(ids)) == 1
    user = store.repo.get_or_create_user("telegram", 555)
    assert [t.position for t in store.repo.history(user.id)] == list(range(16))


def test_concurrent_first_messages_of_one_chat_find_one_user(store: Store) -> None:
    ids: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def first_message() -> None:
        try:
            start.wait()
            ids.append(store.repo.user_context("telegram", "556")[0])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_message) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[:3]
    assert len(ids) == 16 and len(set(ids)) == 1
    assert store.repo.get_or_create_user("telegram", "556").id == ids[0]

"""Repository: atomic turns, context windows, conversations, users."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, func, select

from store import MissingImageError, NewImage, Store, StoredPart, UnknownUserError
from store.repository import Repository
from store.tables import Image, Message, MessagePart
from tests.store.conftest import blob_files, png


def _count(store: Store, model: Any) -> int:
    with store.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_turn_round_trips_parts_in_order(store: Store) -> None:
    user = store.repo.get_or_create_user("telegram", 7)
    image = NewImage.from_bytes(png(1), source="telegram")
    turn = store.repo.append_turn(user.id, "user", ["look:", image, StoredPart.of_text("ok?")])
    assert [p.kind for p in turn.parts] == ["text", "image", "text"]
    assert turn.parts[1].sha256 == image.sha256
    assert store.blobs.read(image.sha256) == image.data
    assert store.repo.history(user.id) == [turn]
    assert store.repo.image_info(image.sha256).width == image.width  # type: ignore[union-attr]


def test_failure_between_parts_leaves_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = store.repo.get_or_create_user("telegram", 8)
    original = Repository._part_row
    calls = {"n": 0}

    def failing(self: Repository, *args: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected between parts")
        return original(self, *args)

    monkeypatch.setattr(Repository, "_part_row", failing)
    parts: list[str | NewImage] = ["a", NewImage.from_bytes(png(2)), "c",
                                   NewImage.from_bytes(png(3))]
    with pytest.raises(RuntimeError, match="injected"):
        store.repo.append_turn(user.id, "user", parts)
    assert calls["n"] == 3  # the failure really happened after two parts were inserted
    assert (_count(store, Message), _count(store, MessagePart), _count(store, Image)) == (0, 0, 0)
    assert blob_files(store) == set()


def test_failed_turn_keeps_files_that_rows_still_reference(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = store.repo.get_or_create_user("telegram", 9)
    kept = NewImage.from_bytes(png(4))
    store.repo.append_turn(user.id, "user", [kept])
    with pytest.raises(MissingImageError):
        store.repo.append_turn(user.id, "user", [kept, StoredPart.of_image("0" * 64)])
    assert blob_files(store) == {kept.sha256}
    assert len(store.repo.history(user.id)) == 1


def test_same_image_from_two_users_is_one_file(store: Store) -> None:
    a = store.repo.get_or_create_user("telegram", 1)
    b = store.repo.get_or_create_user("telegram", 2)
    image = NewImage.from_bytes(png(5))
    store.repo.append_turn(a.id, "user", [image])
    store.repo.append_turn(b.id, "user", [image])
    assert blob_files(store) == {image.sha256}
    assert _count(store, Image) == 1


def test_context_window_respects_turn_and_image_budgets(store: Store) -> None:
    user = store.repo.get_or_create_user("terminal", "me")
    for i in range(6):
        store.repo.append_turn(user.id, "user", [f"q{i}", NewImage.from_bytes(png(10 + i))])
        store.repo.append_turn(user.id, "assistant", [f"a{i}"])
    ctx = store.repo.load_context(user.id, max_turns=4, max_images=10)
    assert [t.parts[0].text for t in ctx.turns] == ["q4", "a4", "q5", "a5"]
    assert ctx.truncated
    ctx = store.repo.load_context(user.id, max_turns=20, max_images=2)
    assert sum(len(t.image_shas) for t in ctx.turns) == 2
    assert [t.parts[0].text for t in ctx.turns] == ["q4", "a4", "q5", "a5"]
    positions = [t.position for t in store.repo.history(user.id)]
    assert positions == list(range(12))


def test_newest_turn_always_in_context_even_over_image_budget(store: Store) -> None:
    user = store.repo.get_or_create_user("terminal", "many")
    images = [NewImage.from_bytes(png(20 + i)) for i in range(3)]
    store.repo.append_turn(user.id, "user", ["old"])
    store.repo.append_turn(user.id, "user", ["three", *images])
    ctx = store.repo.load_context(user.id, max_turns=5, max_images=1)
    assert [t.parts[0].text for t in ctx.turns] == ["three"]


def test_reset_starts_new_conversation_and_keeps_old(store: Store) -> None:
    user = store.repo.get_or_create_user("telegram", 11)
    first = store.repo.append_turn(user.id, "user", ["before"]).conversation_id
    new_id = store.repo.reset(user.id)
    assert new_id != first
    assert store.repo.load_context(user.id).turns == ()
    after = store.repo.append_turn(user.id, "user", ["after"])
    assert after.conversation_id == new_id and after.position == 0
    convs = store.repo.list_conversations(user.id)
    assert [(c.id, c.active, c.turns) for c in convs] == [(new_id, True, 1), (first, False, 1)]
    assert [t.parts[0].text for t in store.repo.history(user.id, first)] == ["before"]


def test_history_of_another_users_conversation_is_refused(store: Store) -> None:
    a = store.repo.get_or_create_user("telegram", 12)
    b = store.repo.get_or_create_user("telegram", 13)
    conv = store.repo.append_turn(a.id, "user", ["mine"]).conversation_id
    with pytest.raises(KeyError):
        store.repo.history(b.id, conv)


def test_users_are_created_once_and_settings_merge(store: Store) -> None:
    a = store.repo.get_or_create_user("telegram", 99)
    assert store.repo.get_or_create_user("telegram", "99").id == a.id
    assert store.repo.get_or_create_user("terminal", 99).id != a.id
    store.repo.update_user(a.id, settings={"lang": "en"}, consent_training=True)
    updated = store.repo.update_user(a.id, settings={"k": 4})
    assert updated.settings == {"lang": "en", "k": 4} and updated.consent_training


def test_bad_input_is_rejected(store: Store) -> None:
    user = store.repo.get_or_create_user("telegram", 14)
    with pytest.raises(ValueError):
        store.repo.append_turn(user.id, "system", ["x"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.repo.append_turn(user.id, "user", [])
    with pytest.raises(UnknownUserError):
        store.repo.append_turn(12345, "user", ["x"])


def test_append_turns_writes_question_and_reply_together(store: Store) -> None:
    user = store.repo.get_or_create_user("telegram", 15)
    image = NewImage.from_bytes(png(30))
    with pytest.raises(MissingImageError):
        store.repo.append_turns(user.id, [("user", ["q", image]),
                                          ("assistant", [StoredPart.of_image("e" * 64)])])
    assert store.repo.history(user.id) == [] and blob_files(store) == set()
    turns = store.repo.append_turns(user.id, [("user", ["q", image]), ("assistant", ["a"])])
    assert [t.position for t in turns] == [0, 1]
    assert store.blobs.get(image.sha256) == image.data and store.blobs.get("d" * 64) is None


def test_first_contact_is_one_read_and_one_write(store: Store) -> None:
    begun: list[Connection] = []
    count = begun.append  # one bound method, to remove the very listener added
    event.listen(Engine, "begin", count)
    try:
        uid, context = store.repo.user_context("telegram", "first")
    finally:
        event.remove(Engine, "begin", count)
    assert context.turns == () and store.repo.get_user(uid).platform_id == "first"
    assert len(begun) == 2  # the miss, then the insert that returns the id
    assert store.repo.user_context("telegram", "first")[0] == uid
    assert store.repo.get_or_create_user("telegram", "first").id == uid

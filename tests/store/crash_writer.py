"""Child process of the SIGKILL test: many users append turns with new images, forever.

Prints ``ACK <user_id> <conversation_id> <position> <sha256>`` after each append returns.
"""

from __future__ import annotations

import os
import sys
import threading

from store import NewImage, StoreConfig, open_store


def main(data_dir: str, url: str, users: int) -> None:
    store = open_store(StoreConfig(data_dir=data_dir), url)
    lock = threading.Lock()

    def burst(n: int) -> None:
        user = store.repo.get_or_create_user("telegram", 10_000 + n)
        for t in range(1_000_000):
            image = NewImage(os.urandom(2048) + f"{n}:{t}".encode(), "RAW", 32, 16, "test")
            turn = store.repo.append_turn(user.id, "user", [f"{n}/{t}", image, "end"])
            with lock:
                print(f"ACK {user.id} {turn.conversation_id} {turn.position} {image.sha256}",
                      flush=True)

    for n in range(users):
        threading.Thread(target=burst, args=(n,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

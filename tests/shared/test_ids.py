import os
import uuid

from shared.ids import uuid4_hex, uuid4_str


def test_ids_are_version_4_uuids_in_uuid4s_formats():
    for _ in range(600):  # more than one 4 KiB batch
        text = uuid4_str()
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
        digits = uuid4_hex()
        assert uuid.UUID(digits).version == 4 and uuid.UUID(digits).hex == digits


def test_ids_do_not_repeat_and_a_forked_child_draws_its_own():
    seen = {uuid4_hex() for _ in range(1000)}
    assert len(seen) == 1000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id, then leave without cleanup
        os.write(write, uuid4_hex().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child not in seen and child != uuid4_hex()

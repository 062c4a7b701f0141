"""Directory failover: the feed's moves are logged, and it returns home once home caught up."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.logger import capturedLogs

from stateless.daemon.failover import DirectoryFailover
from stateless.errors import DirectoryError

HOME, OTHER = "ldap://127.0.0.1:1", "ldap://127.0.0.1:2"


class Feed:
    def __init__(self) -> None:
        self.current_url: str | None = HOME
        self.last_error: str | None = None
        self.moves: list[str] = []

    def move_to(self, url: str) -> None:
        self.moves.append(url)
        self.current_url = None  # the session ends; the next one starts on `url`


class Writer:
    def __init__(self) -> None:
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1


def run_now(fn: Any, *args: Any) -> defer.Deferred[Any]:
    return defer.maybeDeferred(fn, *args)


def test_fails_back_only_once_home_answers_and_caught_up() -> None:
    clock, feed, writer = task.Clock(), Feed(), Writer()
    answers: list[Any] = [DirectoryError("cannot connect"), False, True]
    asked: list[tuple[str, ...]] = []

    def caught_up(*args: str) -> bool:
        asked.append(args)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    fo = DirectoryFailover(clock, run_now, feed, writer, (HOME, OTHER), "cn=admin", "pw", "o=x",
                           caught_up=caught_up)
    fo.start()
    with capturedLogs() as events:
        clock.advance(1)
        assert asked == [] and fo.fields() == {"directory_url": HOME}
        feed.current_url, feed.last_error = OTHER, f"{HOME}: connection closed"
        clock.advance(1)  # home down
        clock.advance(1)  # home up, behind
        assert feed.moves == [] and writer.resets == 0
        clock.advance(1)  # home up to date
        assert feed.moves == [HOME] and writer.resets == 1 and fo.returns == 1
        assert asked[0] == (HOME, OTHER, "cn=admin", "pw", "o=x")
        feed.current_url = HOME
        clock.advance(5)
    assert len(asked) == 3
    moves = [e for e in events if e.get("event") == "directory_failover"]
    assert [e.get("url") for e in moves] == [OTHER, OTHER, OTHER]
    assert "does not answer" in moves[0]["log_format"] and "back on" in moves[-1]["log_format"]


def test_one_url_needs_no_failover() -> None:
    clock, feed = task.Clock(), Feed()
    fo = DirectoryFailover(clock, run_now, feed, Writer(), (HOME,), "cn=admin", "pw", "o=x",
                           caught_up=lambda *a: True)
    fo.start()
    feed.current_url = OTHER
    clock.advance(10)
    assert not fo.enabled and feed.moves == [] and fo.fields() == {}

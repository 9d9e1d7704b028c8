"""How many streams this process holds open, in all and per token: each is a held connection
and a queue, so a leaked or hostile token cannot take them all."""

from __future__ import annotations

from collections.abc import Callable

# A token at its cap must close a stream first; a full process may have room again soon (or
# the load balancer picks another replica).
PER_TOKEN_RETRY_SECONDS = 30
FULL_RETRY_SECONDS = 5


class StreamsFullError(Exception):
    def __init__(self, detail: str, *, per_token: bool) -> None:
        super().__init__(detail)
        self.per_token = per_token  # True: this token's cap (429); False: the process's (503)
        self.retry_after = PER_TOKEN_RETRY_SECONDS if per_token else FULL_RETRY_SECONDS


class StreamSlots:
    def __init__(self, total: int, per_token: int) -> None:
        self._total = total
        self._per_token = per_token
        self._open = 0
        self._by_holder: dict[str, int] = {}

    @property
    def open(self) -> int:
        return self._open

    def take(self, holder: str) -> Callable[[], None]:
        """A slot for one more stream of `holder` (a token's digest), or StreamsFullError;
        the returned call gives it back (once, however often it is called)."""
        held = self._by_holder.get(holder, 0)
        if held >= self._per_token:
            raise StreamsFullError(
                f"this token already has {held} streams open (at most {self._per_token})",
                per_token=True,
            )
        if self._open >= self._total:
            raise StreamsFullError("this server holds all the streams it can", per_token=False)
        self._open += 1
        self._by_holder[holder] = held + 1
        returned = False

        def release() -> None:
            nonlocal returned
            if returned:
                return
            returned = True
            self._open -= 1
            left = self._by_holder[holder] - 1
            if left:
                self._by_holder[holder] = left
            else:
                del self._by_holder[holder]

        return release

"""The real `flame` command as a subprocess, as a person or a script runs it: without a terminal
(`flame`), or at one (`Console`: a pseudo-terminal on which it writes its questions and reads the
answers, typed only once each question has appeared, as a person would)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

CHEAP = {
    "FLAME_SECURITY_ARGON2_MEMORY_KIB": "64",
    "FLAME_SECURITY_ARGON2_ITERATIONS": "1",
    "FLAME_SECURITY_ALLOW_WEAK_KDF": "true",
}


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without the user's FLAME_ settings and config file, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAME_")}
    return env | {"XDG_CONFIG_HOME": os.devnull} | (extra or {})


async def flame(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """`flame ARGS` with no terminal: its exit code, standard output and standard error."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flame",
        *args,
        env=clean_env(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class Console:
    """`flame ARGS` at a terminal: everything it writes (questions, explanations, errors) is read
    from the terminal's other side, in order; `answer` waits for a question, then types."""

    def __init__(self, process: asyncio.subprocess.Process, typist: int) -> None:
        self.process = process
        self.typist = typist
        self.screen = ""  # all it wrote, "\r\n" as "\n"
        self.read_to = 0  # what `expect` has consumed
        self.changed = asyncio.Event()
        self.closed = False
        asyncio.get_running_loop().add_reader(typist, self._read)

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> Console:
        typist, terminal = os.openpty()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "flame",
                *args,
                env=clean_env(CHEAP | (env or {})),
                stdin=terminal,
                stdout=terminal,
                stderr=terminal,
                start_new_session=True,  # no controlling terminal: getpass reads this one
            )
        finally:
            os.close(terminal)
        os.set_blocking(typist, False)
        return cls(process, typist)

    def _read(self) -> None:
        try:
            data = os.read(self.typist, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the program closed its side
            data = b""
        if not data:
            self.closed = True
            asyncio.get_running_loop().remove_reader(self.typist)
        self.screen += data.decode(errors="replace").replace("\r\n", "\n")
        self.changed.set()

    async def expect(self, text: str, timeout: float = 30) -> str:
        """Until `text` appears; returns what was written since the last expectation, to it."""
        async with asyncio.timeout(timeout):
            while (found := self.screen.find(text, self.read_to)) < 0:
                assert not self.closed, f"{text!r} never came; the screen:\n{self.screen}"
                self.changed.clear()
                await self.changed.wait()
        seen = self.screen[self.read_to : found + len(text)]
        self.read_to = found + len(text)
        return seen

    async def answer(self, question: str, text: str) -> str:
        seen = await self.expect(question)
        os.write(self.typist, text.encode() + b"\n")
        return seen

    async def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Its exit code and what it wrote after the last expectation."""
        code = await asyncio.wait_for(self.process.wait(), timeout)
        async with asyncio.timeout(5):
            while not self.closed:
                self.changed.clear()
                await self.changed.wait()
        return code, self.screen[self.read_to :]

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.typist)
            os.close(self.typist)
        if self.process.returncode is None:
            self.process.kill()

"""A Windows Job Object that kills claude's whole process tree when the guard goes away.

The guard holds the only handle to the job. With JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, Windows terminates every
process in the job when that handle closes, which happens however the guard ends (exit, crash, TerminateProcess
from Task Manager). Processes a job member starts join the job automatically, so MCP servers and tools die with
claude instead of leaking.

The child is created suspended and resumed only once it is in the job, so nothing it starts can escape in the
moment between CreateProcess and AssignProcessToJobObject. JOB_OBJECT_LIMIT_BREAKAWAY_OK lets a program that
explicitly asks for CREATE_BREAKAWAY_FROM_JOB still start its process instead of failing with access denied;
such a process has chosen to outlive its parent, and the sweeper's rules apply to it.

On other systems the module imports (the structures are plain ctypes, so their layout is testable anywhere),
but KillOnCloseJob and resume_process raise GuardError.
"""

from __future__ import annotations

import ctypes
import sys

from claude_guard.errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

JOB_OBJECT_LIMIT_BREAKAWAY_OK = 0x0000_0800
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x0000_2000
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9  # JobObjectExtendedLimitInformation
CREATE_SUSPENDED = 0x0000_0004
PROCESS_SET_QUOTA = 0x0100
PROCESS_TERMINATE = 0x0001
THREAD_SUSPEND_RESUME = 0x0002
TH32CS_SNAPTHREAD = 0x0000_0004

# DWORD is spelled c_uint32, not c_ulong, so the layouts are the same when this module is imported on Linux
# (where c_ulong is 8 bytes) and the sizes can be tested there.
_DWORD = ctypes.c_uint32
_SIZE_T = ctypes.c_size_t
_ULONG_PTR = ctypes.c_size_t


class JOBOBJECT_BASIC_LIMIT_INFORMATION(ctypes.Structure):  # named as in the Win32 headers
    _fields_ = (
        ("PerProcessUserTimeLimit", ctypes.c_int64),
        ("PerJobUserTimeLimit", ctypes.c_int64),
        ("LimitFlags", _DWORD),
        ("MinimumWorkingSetSize", _SIZE_T),
        ("MaximumWorkingSetSize", _SIZE_T),
        ("ActiveProcessLimit", _DWORD),
        ("Affinity", _ULONG_PTR),
        ("PriorityClass", _DWORD),
        ("SchedulingClass", _DWORD),
    )


class IO_COUNTERS(ctypes.Structure):
    _fields_ = tuple(
        (name, ctypes.c_uint64)
        for name in (
            "ReadOperationCount",
            "WriteOperationCount",
            "OtherOperationCount",
            "ReadTransferCount",
            "WriteTransferCount",
            "OtherTransferCount",
        )
    )


class JOBOBJECT_EXTENDED_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = (
        ("BasicLimitInformation", JOBOBJECT_BASIC_LIMIT_INFORMATION),
        ("IoInfo", IO_COUNTERS),
        ("ProcessMemoryLimit", _SIZE_T),
        ("JobMemoryLimit", _SIZE_T),
        ("PeakProcessMemoryUsed", _SIZE_T),
        ("PeakJobMemoryUsed", _SIZE_T),
    )


class THREADENTRY32(ctypes.Structure):
    _fields_ = (
        ("dwSize", _DWORD),
        ("cntUsage", _DWORD),
        ("th32ThreadID", _DWORD),
        ("th32OwnerProcessID", _DWORD),
        ("tpBasePri", ctypes.c_int32),
        ("tpDeltaPri", ctypes.c_int32),
        ("dwFlags", _DWORD),
    )


class KillOnCloseJob:
    """A job that kills its processes when closed. Use as a context manager around the child's lifetime."""

    def __init__(self) -> None:
        self._handle: int | None = _create_job()

    def assign(self, pid: int) -> bool:
        """Put process `pid` (created with CREATE_SUSPENDED) into the job; False if Windows refuses.

        Windows 7 refuses when the guard itself runs in a job that forbids nesting; claude then still starts,
        without the guarantee. The caller resumes the process with resume_process either way.
        """
        if self._handle is None:
            raise GuardError("the job is closed", ExitCode.INTERNAL)
        return _assign(self._handle, pid)

    def close(self) -> None:
        """Close the job handle, which ends every process still in it."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            _close(handle)

    def __enter__(self) -> KillOnCloseJob:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def resume_process(pid: int) -> None:
    """Resume the main thread of process `pid`, created with CREATE_SUSPENDED. Raises GuardError on failure."""
    _resume_threads(pid)


if sys.platform == "win32":
    from ctypes import wintypes

    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    _kernel32.CreateJobObjectW.argtypes = (ctypes.c_void_p, wintypes.LPCWSTR)
    _kernel32.CreateJobObjectW.restype = wintypes.HANDLE
    _kernel32.SetInformationJobObject.argtypes = (wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, _DWORD)
    _kernel32.SetInformationJobObject.restype = wintypes.BOOL
    _kernel32.OpenProcess.argtypes = (_DWORD, wintypes.BOOL, _DWORD)
    _kernel32.OpenProcess.restype = wintypes.HANDLE
    _kernel32.AssignProcessToJobObject.argtypes = (wintypes.HANDLE, wintypes.HANDLE)
    _kernel32.AssignProcessToJobObject.restype = wintypes.BOOL
    _kernel32.CreateToolhelp32Snapshot.argtypes = (_DWORD, _DWORD)
    _kernel32.CreateToolhelp32Snapshot.restype = wintypes.HANDLE
    _kernel32.Thread32First.argtypes = (wintypes.HANDLE, ctypes.POINTER(THREADENTRY32))
    _kernel32.Thread32First.restype = wintypes.BOOL
    _kernel32.Thread32Next.argtypes = (wintypes.HANDLE, ctypes.POINTER(THREADENTRY32))
    _kernel32.Thread32Next.restype = wintypes.BOOL
    _kernel32.OpenThread.argtypes = (_DWORD, wintypes.BOOL, _DWORD)
    _kernel32.OpenThread.restype = wintypes.HANDLE
    _kernel32.ResumeThread.argtypes = (wintypes.HANDLE,)
    _kernel32.ResumeThread.restype = _DWORD
    _kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    _kernel32.CloseHandle.restype = wintypes.BOOL

    _INVALID_HANDLE = ctypes.c_void_p(-1).value

    def _close(handle: int) -> None:
        _kernel32.CloseHandle(handle)

    _RESUME_FAILED = 0xFFFF_FFFF

    def _error(what: str) -> GuardError:
        code = ctypes.get_last_error()
        return GuardError(f"{what} failed: {ctypes.FormatError(code)} (error {code})", ExitCode.INTERNAL)

    def _create_job() -> int:
        handle = _kernel32.CreateJobObjectW(None, None)
        if not handle:
            raise _error("CreateJobObject")
        info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION()
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_BREAKAWAY_OK
        if not _kernel32.SetInformationJobObject(
            handle, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS, ctypes.byref(info), ctypes.sizeof(info)
        ):
            err = _error("SetInformationJobObject")
            _kernel32.CloseHandle(handle)
            raise err
        return int(handle)

    def _assign(job: int, pid: int) -> bool:
        process = _kernel32.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, pid)
        if not process:
            return False
        try:
            return bool(_kernel32.AssignProcessToJobObject(job, process))
        finally:
            _kernel32.CloseHandle(process)

    def _resume_threads(pid: int) -> None:
        # subprocess closes the thread handle CreateProcess returns, so the suspended main thread is found
        # again through a snapshot; a suspended process has no other threads yet.
        snapshot = _kernel32.CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0)
        if not snapshot or snapshot == _INVALID_HANDLE:
            raise _error("CreateToolhelp32Snapshot")
        resumed = 0
        try:
            entry = THREADENTRY32()
            entry.dwSize = ctypes.sizeof(entry)
            more = _kernel32.Thread32First(snapshot, ctypes.byref(entry))
            while more:
                if entry.th32OwnerProcessID == pid:
                    thread = _kernel32.OpenThread(THREAD_SUSPEND_RESUME, False, entry.th32ThreadID)
                    if not thread:
                        raise _error("OpenThread")
                    try:
                        if _kernel32.ResumeThread(thread) == _RESUME_FAILED:
                            raise _error("ResumeThread")
                        resumed += 1
                    finally:
                        _kernel32.CloseHandle(thread)
                more = _kernel32.Thread32Next(snapshot, ctypes.byref(entry))
        finally:
            _kernel32.CloseHandle(snapshot)
        if not resumed:
            raise GuardError(f"no thread of process {pid} to resume", ExitCode.INTERNAL)

else:

    def _unsupported() -> GuardError:
        return GuardError("Job Objects exist only on Windows", ExitCode.INTERNAL)

    def _create_job() -> int:
        raise _unsupported()

    def _assign(job: int, pid: int) -> bool:
        raise _unsupported()

    def _resume_threads(pid: int) -> None:
        raise _unsupported()

    def _close(handle: int) -> None:
        pass

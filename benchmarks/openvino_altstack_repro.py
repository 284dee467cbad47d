"""Standalone reproduction: two OpenVINO Cores destroyed in creation order leave a freed signal stack installed.

Each `ov.Core` (once it has compiled a model on CPU) installs an alternate signal stack (sigaltstack) on the
calling thread and, when destroyed, frees it and restores the stack that was current when it was created.
Destroying two Cores in creation order (not LIFO) therefore leaves the first Core's stack — already freed —
installed. The next signal handled on that thread is delivered onto unmapped memory, and the kernel kills the
process with SIGSEGV (si_code SI_KERNEL). Any subprocess exit delivers SIGCHLD, so a test suite that used
OpenVINO earlier dies much later, in unrelated code.

Run: python benchmarks/openvino_altstack_repro.py        (exit code -11/139 = reproduced, 0 = not)
slimvision avoids it by sharing one Core per process (slimvision.quant.runtimes.openvino_core).
"""

from __future__ import annotations

import ctypes
import gc
import signal
import subprocess

import numpy as np
import openvino as ov
from openvino import opset13 as ops


class _Stack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def current_altstack() -> str:
    """The calling thread's alternate signal stack and whether its memory is still mapped."""
    stack = _Stack()
    ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack))
    start = stack.ss_sp or 0
    mapped = False
    with open("/proc/self/maps") as maps:
        for line in maps:
            low, high = (int(x, 16) for x in line.split()[0].split("-"))
            mapped |= low <= start < high
    return f"{start:#x} size {stack.ss_size} {'mapped' if mapped else 'UNMAPPED'}"


def main() -> None:
    print("openvino", ov.__version__)
    parameter = ops.parameter([1, 8], np.float32)
    model = ov.Model([ops.relu(parameter)], [parameter])
    first = ov.Core()
    first_compiled = first.compile_model(model, "CPU")
    print("after first Core compiled: ", current_altstack())
    second = ov.Core()
    second_compiled = second.compile_model(model, "CPU")
    print("after second Core compiled:", current_altstack())
    del first_compiled, first
    gc.collect()
    del second_compiled, second
    gc.collect()
    print("after both destroyed:      ", current_altstack(), flush=True)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    subprocess.run(["true"], check=True)  # SIGCHLD is delivered on the freed stack
    print("not reproduced: the process survived SIGCHLD")


if __name__ == "__main__":
    main()

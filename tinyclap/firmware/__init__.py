"""The classifier as firmware: C sources (``csrc/``, package data), the bundle an export writes, its build and its run.

* :mod:`tinyclap.firmware.bundle` writes ``OUT/firmware/`` (sources, generated model, Makefile, CMakeLists.txt, linker script).
* :mod:`tinyclap.firmware.build` cross-compiles it (``arm-none-eabi-gcc``) and turns a link overflow into one line.
* :mod:`tinyclap.firmware.elf` reads flash and RAM as the linker placed them.
* :mod:`tinyclap.firmware.qemu` runs the Cortex-M7 image in QEMU (``mps2-an500``) and counts instructions.
* :mod:`tinyclap.firmware.netgen` turns an int8 ``.tflite`` into plain C (the network).
"""

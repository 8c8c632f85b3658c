# CMake toolchain file for arm-none-eabi-gcc (bare-metal Cortex-M). Written by tinyclap.firmware.bundle.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

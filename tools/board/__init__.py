"""The board, emulated: Debian roots of Raspberry Pi OS releases under qemu, wheels built there, the board test."""

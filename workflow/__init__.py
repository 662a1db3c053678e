"""The workflows behind the invoke tasks: stacks, outputs, deploy, sweep (tasks.py is the UI)."""

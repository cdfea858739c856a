"""stvg.extract"""

"""stvg.features"""

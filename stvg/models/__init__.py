"""stvg.models"""

"""stvg.evaluate"""

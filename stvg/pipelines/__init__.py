"""stvg.pipelines"""

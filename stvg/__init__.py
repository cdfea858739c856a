"""stvg: spatio-temporal video grounding, as extract -> train -> score.

Conventions used everywhere (docs/design.md section 3):

* frame ids are 0-based native frame indices of the decoded video;
* spans are half-open ``[start, end)`` in frame ids;
* boxes are ``[x1, y1, x2, y2]`` floats in pixels of the original frame, no ``+1``;
  models work in normalized ``cxcywh`` in ``[0, 1]`` and convert at the edges.
"""

__version__ = "0.1.0"

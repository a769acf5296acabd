"""The pipeline's stages, each a function and a command: train -> quantize -> export -> validate ->
bench -> report (and `pipeline`, all of them). Generic: a stage talks to a family only through
edgecap.models.contract and never names a family, a part or a layout other than "whole"."""

"""Experiments behind `cascade experiment ...`: retrieved demonstrations and the learning stream."""

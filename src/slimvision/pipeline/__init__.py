"""Composes the verbs into jobs (recipes run by `optimize`, the demo); verbs never import this package."""

from slimvision.pipeline.recipe import Recipe, load_recipe, recipe_from_dict
from slimvision.pipeline.runner import load_run_recipe, plan_run, report_run, run_recipe

__all__ = ["Recipe", "load_recipe", "load_run_recipe", "plan_run", "recipe_from_dict", "report_run", "run_recipe"]

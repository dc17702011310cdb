"""Deploy ordertasks to Google Cloud from ``infra/tasks.toml`` with gcloud.

``plan`` prints the gcloud commands in order; ``apply`` runs them idempotently (describe,
then create, update only what differs, or leave alone); ``destroy`` deletes what apply made,
keeping data unless asked. See ``docs/deploy.md``.

Modules: ``_model`` (resources and settings), ``_plan`` (what to deploy, the IAM table),
``_engine`` (apply/destroy through an injected ``Runner``), ``_cli`` (arguments).
"""

from infra.deploy._cli import main, parser
from infra.deploy._engine import Change, DeployError, Runner, apply, destroy, gcloud_runner
from infra.deploy._model import SECTIONS, Command, Resource, Setting, render
from infra.deploy._plan import Binding, Target, build_plan, iam_bindings, make_target, source_files

__all__ = ["Binding", "Change", "Command", "DeployError", "Resource", "Runner", "SECTIONS", "Setting",
           "Target", "apply", "build_plan", "destroy", "gcloud_runner", "iam_bindings", "main",
           "make_target", "parser", "render", "source_files"]

"""Deploy ordertasks to Google Cloud from ``infra/tasks.toml`` with gcloud.

``plan`` prints the gcloud commands in order (and refuses while a setting the deployed
system needs is missing); ``apply`` runs them idempotently (describe, then create, update
only what differs, or leave alone); ``destroy`` deletes what apply made, in reverse order,
keeping data unless asked; ``export --format terraform DIR`` writes the same plan as a Terraform
module. See ``docs/deploy.md``.

Modules: ``_model`` (resources and settings), ``_target`` (what and where), ``_cloud``
(the ``[cloud]`` section: settings and secret references), ``_plan`` (the plan, queues, the
handler), ``_services`` (maintenance function, checkout service), ``_access`` (secrets and
IAM), ``_data`` (TTLs, indexes), ``_jobs`` (Scheduler), ``_monitoring`` (metrics, alerts,
dashboard), ``_engine`` (apply/destroy through an injected ``Runner``), ``_terraform`` (the plan as
a Terraform module), ``_source`` (the deployables' source, staged from the installed ordertasks,
the shop's kind modules and the catalog), ``_wheel`` (the ordertasks wheel it stages), ``_toml``
(the flattened catalog), ``_cli`` (arguments).
"""

from ordertasks.infra.deploy._access import Binding, iam_bindings, secret_bindings
from ordertasks.infra.deploy._cli import main, parser
from ordertasks.infra.deploy._cloud import CloudConfig, CloudConfigError, SecretRef, plan_problems
from ordertasks.infra.deploy._engine import Change, DeployError, Runner, apply, destroy, gcloud_runner
from ordertasks.infra.deploy._model import SECTIONS, Command, Resource, Setting, render
from ordertasks.infra.deploy._plan import build_plan, deployed_env
from ordertasks.infra.deploy._source import (SourceOptions, StagedSource, StagingError, source_archive, source_files,
                                             stage_source)
from ordertasks.infra.deploy._target import Target, make_target
from ordertasks.infra.deploy._terraform import TerraformExportError, terraform_module, write_terraform

__all__ = ["Binding", "Change", "CloudConfig", "CloudConfigError", "Command", "DeployError", "Resource", "Runner",
           "SECTIONS", "SecretRef", "Setting", "Target", "apply", "build_plan", "deployed_env", "destroy",
           "gcloud_runner", "iam_bindings", "main", "make_target", "parser", "plan_problems", "render",
           "secret_bindings", "source_archive", "source_files", "SourceOptions", "stage_source", "StagedSource",
           "StagingError", "terraform_module", "TerraformExportError", "write_terraform"]

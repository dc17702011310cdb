"""A shop's own Django views handing paid orders to ordertasks (see docs/library.md)."""

import json
from dataclasses import asdict

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ordertasks import OrderNotFound, OrderTasks

tasks = OrderTasks.from_env()


@csrf_exempt   # called by your payment provider's webhook handler, not by a browser form
@require_POST
def order_paid(request: HttpRequest, order_id: str) -> JsonResponse:
    """Schedule the paid order's side effects."""
    order = json.loads(request.body)
    return JsonResponse({"tasks": [asdict(r) for r in tasks.schedule({"order_id": order_id, **order})]})


def order_tasks(request: HttpRequest, order_id: str) -> JsonResponse:
    """Each side effect's state."""
    try:
        return JsonResponse(tasks.status(order_id))
    except OrderNotFound as exc:
        return JsonResponse({"error": str(exc)}, status=404)


urlpatterns = [
    path("orders/<str:order_id>/paid", order_paid),
    path("orders/<str:order_id>/tasks", order_tasks),
]

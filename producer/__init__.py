"""The producer: the checkout API, its payment port and the enqueueing of an order's tasks.

Public surface: ``create_app`` (``producer.checkout``), ``Enqueuer`` / ``task_name``
(``producer.enqueue``), ``reconcile`` (``producer.reconcile``), ``LocalGateway``
(``producer.payments``). Import from those modules; this package imports nothing eagerly
so that ``ordertasks reconcile`` does not load Flask.
"""

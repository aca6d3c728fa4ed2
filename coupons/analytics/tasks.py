"""Thin Celery tasks: take an id, call the code that does the work; safe to run twice."""

from __future__ import annotations

from celery import shared_task

from coupons.analytics import rollup, simulation


@shared_task(name="analytics.tasks.rollup_recent", ignore_result=True)
def rollup_recent() -> int:
    """Beat job (every 5 minutes): rebuild today's and yesterday's daily facts."""
    return rollup.rollup_recent()


@shared_task(name="analytics.tasks.simulation_run", ignore_result=True, acks_late=True)
def simulation_run(run_id: int) -> None:
    """Run a what-if simulation; a redelivered copy starts it over (it only reads)."""
    simulation.simulation_run(run_id)

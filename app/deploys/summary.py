"""The deploy summary: the one shape of a deploy that sockets, the API and pages share."""

from .models import Deploy, iso_ms


def deploy_summary(deploy: Deploy, steps=None) -> dict:
    """Summarise a deploy (docs/protocol.md). Pass `steps` when already loaded to save a query."""
    if steps is None:
        # order_by("index"), not Step's default ordering ("deploy", "index"): ordering by the foreign
        # key joins deploys to sort by Deploy's own ordering, and Django compiling that ordering was
        # a quarter of daphne's CPU while sockets subscribed (py-spy, docs/benchmarks.md). Same rows,
        # same order: every step here belongs to this one deploy.
        steps = list(deploy.steps.order_by("index"))
    return {
        "id": deploy.pk,
        "service": deploy.service.slug,
        "service_name": deploy.service.display_name,
        "environment": deploy.environment.slug,
        "version": deploy.version,
        "status": deploy.status,
        "runner": deploy.runner,
        "started_by": deploy.started_by_label,
        "created_at": iso_ms(deploy.created_at),
        "started_at": iso_ms(deploy.started_at),
        "finished_at": iso_ms(deploy.finished_at),
        "current_step": deploy.current_step,
        "progress": deploy.progress,
        "last_seq": deploy.last_seq,
        "url": deploy.get_absolute_url(),
        "cancel_requested_by": deploy.cancel_requested_by or None,
        "steps": [
            {
                "index": s.index,
                "name": s.name,
                "state": s.state,
                "duration_ms": s.duration_ms,
                "started_at": iso_ms(s.started_at),
                "finished_at": iso_ms(s.finished_at),
            }
            for s in steps
        ],
    }

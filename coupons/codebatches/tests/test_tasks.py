"""The Celery tasks as functions (eager): the batch task and the beat job that resumes
stalled batches; the schedule and the marketing permissions from the data migration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from coupons.codebatches import services, tasks
from coupons.codebatches.models import CodeBatch
from coupons.codebatches.tests.factories import CodeBatchFactory
from coupons.models import Code

pytestmark = pytest.mark.django_db


def test_task_generates_the_batch():
    batch = CodeBatchFactory(requested=1234)
    tasks.batch_generate.delay(str(batch.pk))  # eager in tests
    batch.refresh_from_db()
    assert batch.status == CodeBatch.Status.DONE
    assert batch.generated == 1234
    assert Code.objects.filter(batch=batch).count() == 1234


def test_task_takes_unknown_ids_quietly():
    tasks.batch_generate("00000000-0000-0000-0000-000000000000")


def test_resume_stalled_picks_quiet_generating_batches_only(monkeypatch):
    # given a stalled half-done batch, a fresh one, and a finished one
    stalled = CodeBatchFactory(requested=3000)
    services.batch_generate(batch_id=stalled.pk, chunk_size=1000, max_chunks=1)
    fresh = CodeBatchFactory(requested=10)
    done = CodeBatchFactory(requested=10, status=CodeBatch.Status.DONE)
    old = timezone.now() - timedelta(minutes=10)
    CodeBatch.objects.filter(pk__in=[stalled.pk, done.pk]).update(updated_at=old)
    queued = []
    monkeypatch.setattr(tasks.batch_generate, "delay", queued.append)
    # when the beat job runs
    assert tasks.batches_resume_stalled() == 1
    # then only the stalled one is queued, and running it completes it exactly
    assert queued == [str(stalled.pk)]
    tasks.batch_generate(queued[0])
    stalled.refresh_from_db()
    assert stalled.status == CodeBatch.Status.DONE
    assert stalled.generated == 3000
    assert Code.objects.filter(batch=stalled).count() == 3000
    fresh.refresh_from_db()
    assert fresh.status == CodeBatch.Status.GENERATING


def test_failed_batch_is_resumed_from_where_it_stopped(django_capture_on_commit_callbacks):
    batch = CodeBatchFactory(requested=2000)
    services.batch_generate(batch_id=batch.pk, chunk_size=500, max_chunks=2)
    CodeBatch.objects.filter(pk=batch.pk).update(status=CodeBatch.Status.FAILED, error="x")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.batch_resume(batch_id=batch.pk) is True
    batch.refresh_from_db()
    assert batch.status == CodeBatch.Status.DONE
    assert batch.generated == 2000
    assert batch.error == ""
    assert Code.objects.filter(batch=batch).count() == 2000
    assert services.batch_resume(batch_id=batch.pk) is False  # only failed ones


def test_migration_made_the_schedule_and_marketing_permissions():
    task = PeriodicTask.objects.get(task="codebatches.tasks.batches_resume_stalled")
    assert task.enabled
    assert task.interval.every == 60
    perms = set(
        Group.objects.get(name="marketing")
        .permissions.filter(content_type__app_label="codebatches")
        .values_list("codename", flat=True)
    )
    assert perms == {"view_codebatch", "add_codebatch"}

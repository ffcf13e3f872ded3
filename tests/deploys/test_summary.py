"""The deploy summary (deploys/summary.py): steps in index order, read without joining deploys."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deploys.models import Deploy, DeployStep, Environment
from deploys.summary import deploy_summary

pytestmark = pytest.mark.django_db


def test_steps_come_in_index_order_from_one_unjoined_query(service):
    production = Environment.objects.get(slug="production")
    deploy = Deploy.objects.create(service=service, environment=production, version="v1")
    for index in (2, 0, 1):  # stored out of order
        DeployStep.objects.create(deploy=deploy, index=index, name=f"step {index}")
    deploy = Deploy.objects.select_related("service", "environment").get(pk=deploy.pk)
    with CaptureQueriesContext(connection) as queries:
        summary = deploy_summary(deploy)
    assert [s["index"] for s in summary["steps"]] == [0, 1, 2]
    assert [s["name"] for s in summary["steps"]] == ["step 0", "step 1", "step 2"]
    assert len(queries) == 1
    assert "JOIN" not in queries[0]["sql"].upper()  # Step's default ordering would join deploys

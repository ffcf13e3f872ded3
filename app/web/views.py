"""The release engineer's pages. Each page renders its starting state on the server (as JSON in a
<script type="application/json">, never interpolated into markup or code); the page's JS module then
keeps it live over the page's socket."""

from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.views.decorators.http import require_POST

from deploys.events import EventError
from deploys.models import Deploy, Environment, Service
from deploys.operations import DeployLocked, start_deploy
from deploys.status import Status
from deploys.summary import deploy_summary

from .forms import StartDeployForm

RECENT = 50
START_PERMISSION = "deploys.start_deploy"


def _icon_base() -> str:
    return static("web/icons/favicon-queued.svg").rsplit("/", 1)[0] + "/"


def _filters(request) -> dict:
    """The dashboard filters from the query string; unknown values are ignored, not errors."""
    wanted = {key: request.GET.get(key, "").strip() for key in ("service", "environment", "status")}
    if wanted["status"] not in Status.values:
        wanted["status"] = ""
    return wanted


def _dashboard(request, form=None, lock=None, status=200):
    filters = _filters(request)
    deploys = Deploy.objects.select_related("service", "environment").prefetch_related("steps")
    if filters["service"]:
        deploys = deploys.filter(service__slug=filters["service"])
    if filters["environment"]:
        deploys = deploys.filter(environment__slug=filters["environment"])
    if filters["status"]:
        deploys = deploys.filter(status=filters["status"])
    summaries = [deploy_summary(d, steps=list(d.steps.all())) for d in deploys[:RECENT]]
    can_deploy = request.user.has_perm(START_PERMISSION)
    context = {
        "filters": filters,
        "services": Service.objects.all(),
        "environments": Environment.objects.all(),
        "statuses": Status.values,
        "can_deploy": can_deploy,
        "form": form if form is not None else (StartDeployForm() if can_deploy else None),
        "lock": lock,
        "page_data": {"deploys": summaries, "filters": filters, "icon_base": _icon_base()},
    }
    return render(request, "web/dashboard.html", context, status=status)


@login_required
def dashboard(request):
    """Recent deploys across services and environments, live over /ws/dashboard/."""
    return _dashboard(request)


@login_required
@permission_required(START_PERMISSION, raise_exception=True)
@require_POST
def start(request):
    """Start a deploy with the runner; on a held lock, show the dashboard again with the lock message."""
    form = StartDeployForm(request.POST)
    if not form.is_valid():
        return _dashboard(request, form=form, status=400)
    try:
        deploy = start_deploy(
            form.cleaned_data["service"], form.cleaned_data["environment"], form.cleaned_data["version"],
            user=request.user,
        )
    except DeployLocked as exc:
        return _dashboard(request, form=form, lock={"message": exc.message, "url": exc.active.get_absolute_url()},
                          status=409)
    except EventError as exc:
        form.add_error(None, exc.message)
        return _dashboard(request, form=form, status=exc.status)
    return redirect(deploy.get_absolute_url())


@login_required
def deploy_page(request, pk: int):
    """One deploy: header, steps, progress, live log, comments, cancel."""
    deploy = get_object_or_404(Deploy.objects.select_related("service", "environment"), pk=pk)
    summary = deploy_summary(deploy)
    context = {
        "deploy": deploy,
        "summary": summary,
        "can_deploy": request.user.has_perm(START_PERMISSION),
        "page_data": {"deploy": summary, "icon_base": _icon_base(), "user": request.user.get_username()},
        "log_url": f"/api/v1/deploys/{deploy.pk}/log.txt",
    }
    return render(request, "web/deploy.html", context)


@login_required
def logs_page(request):
    """Follow a whitelisted log file on an app host, live over /ws/logs/."""
    return render(request, "web/logs.html", {"page_data": {"icon_base": _icon_base()}})

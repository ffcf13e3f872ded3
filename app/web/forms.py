"""Forms of the web pages."""

from django import forms

from deploys.models import Environment, Service


class StartDeployForm(forms.Form):
    """Start a deploy with Herald's own runner: only services that have steps can be chosen."""

    service = forms.ModelChoiceField(
        queryset=Service.objects.filter(steps__isnull=False).distinct(), to_field_name="slug",
        empty_label="Choose a service…",
    )
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.all(), to_field_name="slug", empty_label="Choose an environment…"
    )
    version = forms.CharField(
        max_length=200, strip=True, help_text="A tag, branch or commit, e.g. v1.4.2.",
        widget=forms.TextInput(attrs={"aria-describedby": "version-help", "autocomplete": "off"}),
    )

"""/portal routes (placeholder until the portal views land)."""
from django.http import HttpResponse
from django.urls import path

app_name = "portal"


def _stub(request, *args, **kwargs):
    return HttpResponse("portal")


urlpatterns = [
    path("", _stub, name="dashboard"),
    path("login/", _stub, name="login"),
    path("2fa/verify/", _stub, name="2fa-verify"),
    path("2fa/setup/", _stub, name="2fa-setup"),
]

"""Root URLconf: the only place where the tenant core wires in the domain apps."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy

from clinic import views
from clinic.access import public
from clinic.forms import SignInForm

clinic_admin_patterns = [
    path("", views.clinic_settings, name="settings"),
    path("switch/", views.clinic_switch, name="switch"),
    path("members/", views.member_list, name="members"),
    path("members/add/", views.member_add, name="member-add"),
    path("members/<uuid:member>/", views.member_edit, name="member-edit"),
    path("members/<uuid:member>/remove/", views.member_remove, name="member-remove"),
    path("audit/", views.audit_log, name="audit"),
]
for page in views.PAGES.values():
    singular = page.singular
    clinic_admin_patterns += [
        path(f"{page.key}/", views.tenant_list, {"page": page.key}, name=page.key),
        path(f"{page.key}/add/", views.tenant_edit, {"page": page.key}, name=f"{singular}-add"),
        path(f"{page.key}/<uuid:public_id>/", views.tenant_edit, {"page": page.key}, name=f"{singular}-edit"),
    ]

account_patterns = [
    path(
        "login/",
        public(auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=SignInForm)),
        name="login",
    ),
    path("logout/", public(auth_views.LogoutView.as_view()), name="logout"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", public(auth_views.PasswordResetView.as_view()), name="password_reset"),
    path("password/reset/sent/", public(auth_views.PasswordResetDoneView.as_view()), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        public(auth_views.PasswordResetConfirmView.as_view(success_url=reverse_lazy("password_reset_complete"))),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        public(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("time-zone/", views.viewer_time_zone, name="time-zone"),
    path("accounts/", include(account_patterns)),
    path("clinic/", include((clinic_admin_patterns, "clinic"))),
    path("calendar/", include("scheduling.urls")),
    path("patients/", include("patients.urls")),
    path("setup/", include("sessions_setup.urls")),
    path("sync/", include("calendar_sync.urls")),
    path("messages/", include("notifications.urls")),
    path("privacy/", include("privacy.urls")),
    path("", include("fhir_api.urls")),
    path("", include("online.urls")),
]

"""Root URLconf: the only place where the tenant core wires in the domain apps."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy

from clinic import signin_views, views
from clinic.access import public

clinic_admin_patterns = [
    path("", views.clinic_settings, name="settings"),
    path("switch/", views.clinic_switch, name="switch"),
    path("members/", views.member_list, name="members"),
    path("members/add/", views.member_add, name="member-add"),
    path("members/<uuid:member>/", views.member_edit, name="member-edit"),
    path("members/<uuid:member>/remove/", views.member_remove, name="member-remove"),
    path(
        "members/<uuid:member>/two-factor-reset/", signin_views.member_two_factor_reset, name="member-two-factor-reset"
    ),
    path("audit/", views.audit_log, name="audit"),
    path("sign-in/", signin_views.signin_settings, name="signin-settings"),
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
        public(signin_views.SignInView.as_view()),
        name="login",
    ),
    path("two-factor/", signin_views.two_factor, name="two-factor"),
    path("two-factor/set-up/", signin_views.two_factor_setup, name="two-factor-setup"),
    path("two-factor/recovery-codes/", signin_views.recovery_codes, name="recovery-codes"),
    path("security/", signin_views.account_security, name="account-security"),
    path("sessions/", signin_views.sessions_list, name="sessions"),
    path("sessions/<uuid:user_session>/end/", signin_views.session_end, name="session-end"),
    path("sessions/end-all/", signin_views.sign_out_everywhere, name="sign-out-everywhere"),
    path("session/", signin_views.session_status, name="session-status"),
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

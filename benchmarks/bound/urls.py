from django.urls import path

from benchmarks.bound import views
from clinic.urls import urlpatterns as product

urlpatterns = [
    path("bound/<str:variant>/<uuid:slot>/", views.bound_book, name="bound-book"),
    *product,
]

from django.urls import URLPattern, URLResolver, path

from privacy.views import breakglass

app_name = "privacy"

urlpatterns: list[URLPattern | URLResolver] = [
    path("break-glass/patient/<uuid:patient>/", breakglass.break_glass, name="break-glass"),
    path("break-glass/reviews/", breakglass.reviews, name="reviews"),
    path("break-glass/reviews/<uuid:use>/", breakglass.review, name="review"),
]

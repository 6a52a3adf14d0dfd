"""The CapabilityStatement at /fhir/metadata: the resources, interactions and search parameters served, and how to
get a token."""

from __future__ import annotations

from typing import Any

from fhir_api.resources import FHIR_JSON, FHIR_VERSION

RELEASED = "2026-12-04"


def _read(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": kind, "interaction": [{"code": "read"}], **more}


def capability_statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": RELEASED,
        "publisher": "Clinic Scheduler",
        "kind": "instance",
        "software": {"name": "Clinic Scheduler"},
        "implementation": {
            "description": "GP Connect-style appointment management (FHIR R4): free slots, booking, amending and "
            "cancelling appointments in the sessions a practice released for third parties.",
            "url": base,
        },
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [{"url": "token", "valueUri": f"{base}/oauth/token"}],
                        }
                    ],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": "OAuth2 client credentials per consumer (scopes slot.read, appointment.read, "
                    "appointment.write). Name the requesting practitioner and organisation in the "
                    "X-Requesting-Practitioner and X-Requesting-Organization headers (required to write).",
                },
                "resource": [
                    {
                        "type": "Slot",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": "start", "type": "date", "documentation": "ge…, required, once"},
                            {"name": "end", "type": "date", "documentation": "le…, required, at most 14 days on"},
                            {"name": "status", "type": "token", "documentation": "free (required)"},
                        ],
                        "searchInclude": ["Slot:schedule"],
                        "searchRevInclude": [],
                    },
                    _read("Schedule", searchInclude=["Schedule:actor:Practitioner", "Schedule:actor:Location"]),
                    _read("Practitioner"),
                    _read("PractitionerRole"),
                    _read("Location", searchInclude=["Location:managingOrganization"]),
                    _read("Organization"),
                    {
                        "type": "Patient",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {
                                "name": "identifier",
                                "type": "token",
                                "documentation": "https://fhir.nhs.uk/Id/nhs-number|… or the practice's internal ID",
                            }
                        ],
                    },
                    {
                        "type": "Appointment",
                        "versioning": "versioned-update",
                        "readHistory": False,
                        "updateCreate": False,
                        "conditionalCreate": False,
                        "interaction": [{"code": "read"}, {"code": "create"}, {"code": "update"}],
                        "searchParam": [
                            {
                                "name": "start",
                                "type": "date",
                                "documentation": "Patient/<id>/Appointment?start=ge…[&start=le…]",
                            }
                        ],
                    },
                ],
            }
        ],
    }

"""privacy's services, one module per topic (breakglass, patient_data, clinic_export)."""

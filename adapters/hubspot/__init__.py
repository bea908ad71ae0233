"""HubSpot behind the CRM protocol, through hubspot-api-client."""

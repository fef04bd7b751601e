"""HTTP routes: parse the request, call the domain, render the answer. No rules live here."""

"""The registration authority's workflows: a request, after the official forms of Decree
68/2024/NĐ-CP, goes draft → submitted → approved → issued → handed over; the CA
(``kyso.pki``) only signs what this package decided."""

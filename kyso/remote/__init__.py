"""Remote signing: keys held centrally (the seed's "HSM for agencies"), used only with the
signer's consent given on their phone, through kyso's pages, its REST API and the CSC API."""

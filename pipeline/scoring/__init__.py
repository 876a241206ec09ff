"""How text is scored: the Kneser-Ney n-gram, held-out likelihood of the LSTM, metrics of generated
text."""

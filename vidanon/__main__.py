from vidanon.cli import main

main()
